"""What one request touches after a wake-up: cache lines and pages per request, cold and warm.

In the real server a worker that slept (other processes ran on its core) finds the caches and
TLBs refilled with others' lines, so its next request reloads the interpreter's code and data:
at one request per wake-up that costs kemi ~36-47 us more than back to back, Kamailio ~14
(bench/register_wakes.py). This tool measures that working set in process, one request at a
time: bench/register_profile.py's worker (``--mode memory``: usrloc in memory, ``sqlite``:
write-through, ``auth``: auth.py's digest check then save, each datagram of the challenged and
the answered REGISTER counted as one request; ``floor``: a bare 200) under valgrind's callgrind
with its cache simulation. Before each "cold" request a buffer twice the simulated last-level
cache is written (out of the counts: collection is switched on only around the request, by
callgrind's client requests from a small C helper compiled here); "warm" requests run back to
back. Printed per request: instructions, L1 instruction and data misses (each a 64-byte line
the request needed and did not have), last-level misses, by object file (python3.11, _fast,
Lua, lmdb, sqlite, libc...) and the top functions, cold and warm; the cost of the toggles
themselves (an empty cold request) is subtracted.

``--pages`` simulates 4 KiB lines instead: an L1 of 64 entries and a last level of 2,048, the
sizes of the first and second level data TLBs, so that its "misses" are the pages a request
needs: a cold request's count is about its page walks after a wake-up. ``--time`` runs the same
loop outside valgrind and prints the thread CPU time of a request, cold and warm (medians); its
flush is ``--flush-kb`` (4 MiB: the L2s, the TLBs and an eighth of the L3, about what a real
wake-up costs: 64 MiB, the whole L3, costs several times more). ``--functions`` counts the
distinct Python code objects and C functions a request calls. ``--server kemi|kamailio`` runs
the real server on bench/register.py's cfg under callgrind, one REGISTER per wake-up: its
misses per REGISTER, warm only (no other process evicts valgrind's simulated caches).

    python bench/wake_set.py [--mode memory|sqlite|floor|auth] [--requests 200] [--pages]
                             [--time [--flush-kb 4096]] [--functions] [--top 25] [--keep DIR]
                             [--server kemi|kamailio]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import register_profile as rp  # noqa: E402

#: this machine's caches (AMD EPYC: 32 KiB 8-way L1i and L1d per core, 32 MiB 16-way L3)
CACHES = ["--I1=32768,8,64", "--D1=32768,8,64", "--LL=33554432,16,64"]
#: pages as lines: 64-entry L1 TLBs (fully associative), a 2,048-entry 16-way L2 TLB
PAGES = ["--I1=262144,64,4096", "--D1=262144,64,4096", "--LL=8388608,16,4096"]
FLUSH_BYTES = 64 << 20  # twice the simulated last level

HELPER = r"""
#include <stddef.h>
#include <valgrind/callgrind.h>
void ws_toggle(void) { CALLGRIND_TOGGLE_COLLECT; }
void ws_dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
/* write one byte of every line: the caches (and the TLBs) hold only this buffer after it */
void ws_flush(volatile unsigned char *buf, size_t n) {
    for (size_t i = 0; i < n; i += 64) buf[i]++;
}
"""


class Helper:
    """The C helper: collection on/off and dumps (no-ops outside valgrind), and the flush."""

    def __init__(self, work: Path, flush_bytes: int = FLUSH_BYTES) -> None:
        src, lib = work / "ws_helper.c", work / "ws_helper.so"
        src.write_text(HELPER)
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
        self.lib = ctypes.CDLL(str(lib))
        self.lib.ws_dump.argtypes = [ctypes.c_char_p]
        self.lib.ws_flush.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self.size = flush_bytes
        self.buf = ctypes.create_string_buffer(flush_bytes)
        self.toggle = self.lib.ws_toggle

    def flush(self) -> None:
        self.lib.ws_flush(self.buf, self.size)

    def dump(self, label: str) -> None:
        self.lib.ws_dump(label.encode())


def _setup(mode: str, work: Path, users: int, count: int) -> tuple[Callable[[bytes], None], list[bytes]]:
    """A worker routing bench/register_profile.py's config, warmed up; the requests to measure."""
    from kemi_core.runtime.context import RecvInfo
    from kemi_core.runtime.worker import tune_gc

    router = rp._router(mode, work)
    sink = rp.Sink(router.wire.listen)
    router.core.attach_transport(sink)
    rcv = RecvInfo("udp", "127.0.0.1", 5070, "127.0.0.1", 5060)
    on_data = router.dispatcher.on_data
    make = rp._messages(mode, router, sink, users, max(count, users), offline=True)
    for data in make(0):  # every user registered once, the code paths warmed up
        on_data(data, rcv)
    if not sink.last.startswith(b"SIP/2.0 200 "):  # a cfg that fails would measure its error
        raise SystemExit(f"{mode}: the warm-up's last answer: {sink.last[:60]!r}")
    tune_gc()
    batch = make(1)
    return (lambda data: on_data(data, rcv)), batch


def inner(opts: argparse.Namespace) -> int:
    """Runs under callgrind (collection off at start): one dump per phase."""
    with tempfile.TemporaryDirectory(prefix="kemi-wake-set-") as tmp:
        helper = Helper(Path(tmp))
        handle, batch = _setup(opts.mode, Path(tmp), opts.users, 3 * opts.requests)
        n = opts.requests
        toggle, flush = helper.toggle, helper.flush
        helper.dump("start")
        for data in batch[:n]:
            flush()
            toggle()
            handle(data)
            toggle()
        helper.dump("cold")
        for data in batch[n:2 * n]:
            toggle()
            handle(data)
            toggle()
        helper.dump("warm")
        for _ in range(n):
            flush()
            toggle()
            toggle()
        helper.dump("empty")
    return 0


def parse_callgrind(path: Path) -> tuple[list[str], dict[tuple[str, str], list[int]]]:
    """(event names, exclusive costs per (object, function)) of one callgrind dump."""
    names: dict[str, dict[str, str]] = {"ob": {}, "fn": {}, "cob": {}, "cfn": {}}
    events: list[str] = []
    costs: dict[tuple[str, str], list[int]] = defaultdict(list)
    ob = fn = ""
    skip_next = False

    def name(kind: str, value: str) -> str:
        table = names["ob" if kind in ("ob", "cob") else "fn"]
        value = value.strip()
        if value.startswith("("):
            ident, _, rest = value.partition(")")
            rest = rest.strip()
            if rest:
                table[ident] = rest
            return table.get(ident, ident)
        return value

    for line in path.read_text(errors="replace").splitlines():
        if not line:
            continue
        head = line[0]
        if head.isdigit() or head in "+-*":
            if skip_next:  # the inclusive cost of a call: not this function's own
                skip_next = False
                continue
            parts = line.split()[1:]
            row = costs[ob, fn]
            if len(row) < len(events):
                row.extend([0] * (len(events) - len(row)))
            for i, value in enumerate(parts):
                row[i] += int(value)
            continue
        key, _, value = line.partition("=")
        if key == "ob":
            ob = name("ob", value)
        elif key == "fn":
            fn = name("fn", value)
        elif key in ("cob", "cfn"):
            name(key, value)
        elif key == "calls":
            skip_next = True
        elif line.startswith("events:"):
            events = line.split()[1:]
    return events, costs


def _short_object(path: str) -> str:
    base = os.path.basename(path)
    for known in ("python3", "_fast", "lupa", "liblua", "lua", "lmdb", "sqlite", "libc.so",
                  "libc-", "uvloop", "ld-linux", "libm", "libcrypto", "libz", "_hashlib",
                  "ws_helper", "_ctypes", "libffi"):
        if known in base:
            return base
    return base or path


TRIGGER = "desc: Trigger: Client Request: "


def _dumps(out: Path) -> dict[str, Path]:
    """callgrind's dump files by the label their client request gave."""
    found = {}
    for path in out.parent.glob(out.name + "*"):
        with path.open(errors="replace") as fh:
            for line in fh:
                if line.startswith(TRIGGER):
                    found[line[len(TRIGGER):].strip()] = path
                    break
                if line.startswith(("fl=", "ob=", "fn=")):
                    break
    return found


def measure(opts: argparse.Namespace) -> dict:
    """Runs this script under callgrind; costs per request by phase, object and function."""
    with tempfile.TemporaryDirectory(prefix="kemi-wake-set-cg-") as tmp:
        keep = Path(opts.keep) if opts.keep else Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        out = keep / f"callgrind.{opts.mode}{'.pages' if opts.pages else ''}"
        if not opts.reuse:
            for old in keep.glob(out.name + "*"):
                old.unlink()
            subprocess.run(["valgrind", "--tool=callgrind", "--cache-sim=yes",
                            *(PAGES if opts.pages else CACHES), "--collect-atstart=no",
                            f"--callgrind-out-file={out}", sys.executable, __file__, "--inner",
                            "--mode", opts.mode, "--requests", str(opts.requests),
                            "--users", str(opts.users)],
                           check=True, env=dict(os.environ, PYTHONHASHSEED="0"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dumps = _dumps(out)
        parsed = {label: parse_callgrind(dumps[label]) for label in ("cold", "warm", "empty")}
    events = parsed["cold"][0]
    n = opts.requests

    def per_request(label: str, minus_empty: bool) -> dict[tuple[str, str], list[float]]:
        costs = parsed[label][1]
        empty = parsed["empty"][1] if minus_empty else {}
        result = {}
        for key in set(costs) | set(empty):
            a = costs.get(key, [])
            b = empty.get(key, [])
            result[key] = [((a[i] if i < len(a) else 0) - (b[i] if i < len(b) else 0)) / n
                           for i in range(len(events))]
        return result

    # the warm phase's toggles are warm too: an empty warm request costs ~nothing but its
    # instructions, which the cold empty phase measures (its misses would overcount them)
    cold = per_request("cold", True)
    warm = per_request("warm", False)
    return {"events": events, "cold": cold, "warm": warm}


def report(opts: argparse.Namespace, result: dict) -> dict:
    events: list[str] = result["events"]
    wanted = [e for e in ("Ir", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw") if e in events]
    idx = {e: events.index(e) for e in wanted}
    unit = "pages" if opts.pages else "lines"
    summary: dict = {"mode": opts.mode, "unit": unit, "requests": opts.requests}
    for phase in ("cold", "warm"):
        costs = result[phase]
        total = {e: sum(v[idx[e]] for v in costs.values()) for e in wanted}
        by_object: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(wanted))
        for (ob, _fn), v in costs.items():
            row = by_object[_short_object(ob)]
            for j, e in enumerate(wanted):
                row[j] += v[idx[e]]
        print(f"\n{opts.mode} {phase} ({unit}): per request " + "  ".join(
            f"{e} {total[e]:,.0f}" for e in wanted))
        print(f"  {'object':40} " + " ".join(f"{e:>9}" for e in wanted))
        for ob, row in sorted(by_object.items(), key=lambda kv: -(kv[1][1] + kv[1][2]))[:12]:
            if max(abs(x) for x in row) < 0.5:
                continue
            print(f"  {ob[:40]:40} " + " ".join(f"{x:9,.0f}" for x in row))
        summary[phase] = {"total": {e: round(total[e], 1) for e in wanted},
                          "by_object": {ob: dict(zip(wanted, (round(x, 1) for x in row), strict=True))
                                        for ob, row in by_object.items()
                                        if max(abs(x) for x in row) >= 0.5}}
        if phase == "cold":
            # the last level's misses are what a wake-up adds (warm, a request's lines come
            # back from the L2/L3 the simulation folds into its last level)
            miss = [e for e in ("ILmr", "DLmr", "DLmw") if e in idx]
            print(f"  top functions by {'+'.join(miss)} (cold; then I1mr D1mr D1mw, Ir):")
            ranked = sorted(costs.items(), key=lambda kv: -sum(kv[1][idx[e]] for e in miss))
            for (ob, fn), v in ranked[:opts.top]:
                print(f"    {sum(v[idx[e]] for e in miss):7.1f}  " + " ".join(
                    f"{v[idx[e]]:6.1f}" for e in miss) + " | " + " ".join(
                    f"{v[idx[e]]:6.1f}" for e in ("I1mr", "D1mr", "D1mw") if e in idx)
                      + f" {v[idx['Ir']]:7,.0f}  {fn[:60]} ({_short_object(ob)[:24]})")
    return summary


def _median(values: list[int]) -> float:
    # (bench/statistics.py shadows the standard library's module here)
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def timing(opts: argparse.Namespace) -> dict:
    """Thread CPU time per request outside valgrind, cold (after the flush) and warm."""
    with tempfile.TemporaryDirectory(prefix="kemi-wake-set-t-") as tmp:
        helper = Helper(Path(tmp), opts.flush_kb << 10)
        n = opts.requests
        handle, batch = _setup(opts.mode, Path(tmp), opts.users, 2 * n * opts.rounds)
        clock = time.thread_time_ns
        cold: list[int] = []
        warm: list[int] = []
        for r in range(opts.rounds):
            part = batch[2 * n * r: 2 * n * (r + 1)]
            for data in part[:n]:
                helper.flush()
                t0 = clock()
                handle(data)
                cold.append(clock() - t0)
            for data in part[n:]:
                t0 = clock()
                handle(data)
                warm.append(clock() - t0)
    out = {"cold_us": round(_median(cold) / 1e3, 1),
           "warm_us": round(_median(warm) / 1e3, 1)}
    print(f"{opts.mode}: thread CPU per request (median of {len(cold)}): cold {out['cold_us']} us, "
          f"warm {out['warm_us']} us, cold - warm {out['cold_us'] - out['warm_us']:.1f} us")
    return out


def functions(opts: argparse.Namespace) -> dict:
    """Distinct Python code objects and C functions one request calls (mean over requests)."""
    with tempfile.TemporaryDirectory(prefix="kemi-wake-set-f-") as tmp:
        handle, batch = _setup(opts.mode, Path(tmp), opts.users, opts.requests)
        py: set = set()
        cfun: set = set()
        calls = Counter[str]()

        def profiler(frame, event, arg):  # type: ignore[no-untyped-def]
            if event == "call":
                py.add(frame.f_code)
                calls[f"{frame.f_code.co_filename}:{frame.f_code.co_name}"] += 1
            elif event == "c_call":
                cfun.add(getattr(arg, "__qualname__", repr(arg)))

        n_py = n_c = 0
        for data in batch[:opts.requests]:
            py.clear()
            cfun.clear()
            sys.setprofile(profiler)
            handle(data)
            sys.setprofile(None)
            n_py += len(py)
            n_c += len(cfun)
    n = opts.requests
    print(f"{opts.mode}: distinct Python functions per request {n_py / n:.1f}, "
          f"distinct C functions called from Python {n_c / n:.1f}")
    for key, count in calls.most_common(opts.top):
        print(f"  {count / n:7.1f} calls per request  {key.split('/src/')[-1].split('/kemi_core/')[-1]}")
    return {"python_functions": round(n_py / n, 1), "c_functions": round(n_c / n, 1)}


def _totals(path: Path) -> list[int]:
    """A callgrind file's whole-process event totals (its ``totals:`` or ``summary:`` line)."""
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(("totals:", "summary:")):
            return [int(x) for x in line.split()[1:]]
    return []


def server(opts: argparse.Namespace) -> dict:
    """The real server (kemi or Kamailio 5.6) on bench/register.py's cfg under callgrind with
    the cache simulation, REGISTERs one at a time (each answered before the next: one per
    wake-up), twice: after the same warm-up, ``--requests`` and three times as many; the
    worker's (busiest process's) difference / 2N is one REGISTER. Misses here are warm ones:
    under valgrind no other process evicts the simulated caches, so this gives the server's
    working set only as far as it overflows the L1s (a request touching more than 32 KiB of
    code misses at every request even back to back)."""
    import register as register_bench
    from common import Proc, kamailio_args, wait_udp_answer
    from server_callgrind import registers

    from kemi_core.testing.process import kemi_executable

    def one(n: int) -> dict[str, list[int]]:
        with tempfile.TemporaryDirectory(prefix="kemi-wake-set-srv-") as tmp:
            work = Path(tmp)
            name = "kamailio" if opts.server == "kamailio" else "kemi"
            cfg, port = register_bench.write_cfg(opts.mode, f"{name}_{opts.mode}", work)
            args = (kamailio_args(work)(cfg) if opts.server == "kamailio"
                    else [*kemi_executable(), "run", "-f", str(cfg)])
            env = dict(os.environ, KEMI_CTL=f"unix:{work}/kemi_ctl", PYTHONHASHSEED="0")
            proc = Proc(["valgrind", "--tool=callgrind", "--cache-sim=yes",
                         *(PAGES if opts.pages else CACHES), f"--callgrind-out-file={work}/cg.%p",
                         *args], work / "server.log", cwd=work, env=env)
            try:
                if not wait_udp_answer(port, timeout=600):
                    raise RuntimeError("the server under valgrind did not answer: "
                                       + (work / "server.log").read_text()[-2000:])
                registers(port, 0, opts.users, opts.users, 1)
                ok = registers(port, opts.users, n, opts.users, 1)
                if ok != n:
                    raise RuntimeError(f"{n - ok} REGISTERs not answered 200")
            finally:
                proc.stop()
            return {f.name: _totals(f) for f in work.glob("cg.*")}

    small, big = one(opts.requests), one(3 * opts.requests)
    # processes differ in pid between the runs: match the busiest with the busiest
    first = max(small.values(), key=lambda v: v[0] if v else 0)
    second = max(big.values(), key=lambda v: v[0] if v else 0)
    events = ["Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw"]
    per = {e: (second[i] - first[i]) / (2 * opts.requests) for i, e in enumerate(events)}
    unit = "pages" if opts.pages else "lines"
    print(f"{opts.server} {opts.mode} real server, one REGISTER per wake-up, warm ({unit}): "
          + "  ".join(f"{e} {per[e]:,.0f}" for e in events if e not in ("Dr", "Dw")))
    return {"server": opts.server, "mode": opts.mode, "unit": unit,
            "per_register": {e: round(v, 1) for e, v in per.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["memory", "sqlite", "floor", "auth"], default="memory")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5, help="--time: rounds of cold + warm")
    parser.add_argument("--flush-kb", type=int, default=4096,
                        help="--time: the buffer written before a cold request (KiB)")
    parser.add_argument("--pages", action="store_true", help="4 KiB lines: pages, as a TLB sees")
    parser.add_argument("--time", action="store_true", help="thread CPU time, outside valgrind")
    parser.add_argument("--functions", action="store_true",
                        help="distinct Python/C functions per request")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", help="keep the callgrind dumps in this directory")
    parser.add_argument("--reuse", action="store_true", help="with --keep: report its dumps again")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--server", choices=["kemi", "kamailio"],
                        help="the real server under callgrind (warm misses per REGISTER)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.inner:
        return inner(opts)
    if opts.server:
        summary = server(opts)
    elif opts.time:
        summary = timing(opts)
    elif opts.functions:
        summary = functions(opts)
    else:
        summary = report(opts, measure(opts))
    if opts.json:
        Path(opts.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
