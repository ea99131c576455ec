"""The ceiling of a compiled usual path: a worker's CPU per request when no Python frame runs.

A REGISTER costs kemi more per wake-up than Kamailio (bench/register_wakes.py), and most of the
lines a wake-up refetches are the interpreter's (bench/wake_set.py). Before anyone compiles the
usual request path, this measures what it could reach at best: the real server (kemi on
bench/register.py's floor cfg, one worker) with an experimental responder in its worker that
answers each REGISTER with the floor's own 200 (byte for byte, checked at every start) while no
Python frame runs per datagram. The responders are C compiled here at run time
(bench/wake_ceiling.c, a CPython extension; never in the server's code path), put in place by a
launcher that patches ``WorkerEndpoints.open_udp`` in the server's process before it forks:

- ``kemi``: today's floor (the launcher changes nothing);
- ``fast``: the worker's own event path (uvloop -> ``UdpSocket._read_ready`` -> ``_fast.udp_event``:
  recvmmsg, RecvInfo, hold/release, ``parse_datagram``) hands each message to a receiver written
  in C that calls ``_fast``'s pieces (``lines_crc32`` for sl's To-tag, ``build_reply``,
  ``endpoints.send`` = ``_fast.udp_out``): what a usual path compiled inside today's object
  model would cost, less the dispatcher, gate, engine and counters it would also have to own;
- ``c``: uvloop calls a C reader (recvmmsg, the reply built from the bytes, sendto or sendmmsg):
  no Python object per datagram, the interpreter entered once per wake-up by uvloop;
- ``cloop``: the same in a C epoll loop (the GIL released while it waits, as uvloop does), back
  to uvloop every 200 ms for its timers: the interpreter exists in the process but runs
  nothing per wake-up;
- ``kamailio``: Kamailio 5.6 on the same floor cfg;
- ``kemi-memory``, ``kamailio-memory``: both servers' usual REGISTER (usrloc in memory), the
  yardstick of issues 14 and 17 (Kamailio's floor costs it more than its REGISTER does);
- ``kemi-lua``, ``kamailio-lua``: the same REGISTER routed by a Lua script (LUA_ROUTE: the
  KEMI example's first steps, bench/auth.py's route without the digest check, tm loaded).

A client sends REGISTERs in bursts of ``k`` (``--ks``), reads each burst's answers and pauses
``--gap-us`` so that the server sleeps between bursts (one wake-up per burst: without the pause
a fast server often finds the next burst waiting and never sleeps). Printed per variant and k:
CPU per REGISTER of the server's whole process tree and of its busiest process (the worker),
from /proc/*/task/*/schedstat (exact ns), and voluntary switches (sleeps) per REGISTER; the
variants alternate in order round by round, each round on a fresh server; best and median of
the rounds. ``--opcodes`` counts instead the Python bytecodes the worker runs per burst (a
tracer in its loop thread; the outbox's hold time raised so that the tracer's slowness does not
change what is sent). ``--callgrind`` runs each variant under callgrind with the cache
simulation of bench/wake_set.py (this machine's 32 KiB L1s), REGISTERs in bursts of
``--cg-k``, twice (N and 3N): instructions and warm L1 misses per REGISTER of the busiest
process. ``--save`` measures, in process (bench/wake_set.py's memory worker), what the usual
REGISTER's compiled save (``reg_save_usual``: the request memo, lmdb's write transaction, the
200's Contact and Date) costs in its own C, the reply it sends through sl left out (that is
the floor's part): thread CPU time cold (after a ``--flush-kb`` flush) and warm, or with
``--callgrind`` instructions and cache misses (collection switched on only inside it): added to
the ``c`` responder's floor, an estimate of a compiled memory REGISTER.

    python bench/wake_ceiling.py [--variants kemi,fast,c,cloop,kamailio,...] [--ks 1,5,50]
                                 [--count 2000] [--rounds 3] [--gap-us 300]
                                 [--opcodes | --callgrind [--cg-k 1] [--requests 300]
                                  [--keep DIR]]
    python bench/wake_ceiling.py --save [--callgrind] [--requests 300] [--flush-kb 4096]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import register as register_bench  # noqa: E402
from common import (  # noqa: E402
    Proc,
    cpu_by_pid,
    kamailio_args,
    kamailio_available,
    wait_udp_answer,
)
from register_profile import REGISTER  # noqa: E402
from server_callgrind import registers  # noqa: E402
from wake_set import CACHES, _totals  # noqa: E402

VARIANTS = ("kemi", "fast", "c", "cloop", "kamailio", "kemi-memory", "kamailio-memory",
            "kemi-lua", "kamailio-lua")

#: the ``-lua`` variants' route: bench/auth.py's Lua REGISTER without the digest check (the
#: KEMI example's first steps: maxfwd, the in-dialog test, the method test, save), tm loaded
#: as in the example (sl's replies ask it for a transaction); usrloc in memory
LUA_ROUTE = """
function ksr_request_route()
    if KSR.maxfwd.process_maxfwd(10) < 0 then
        KSR.sl.sl_send_reply(483, "Too Many Hops")
        return
    end
    if not KSR.pv.is_null("$tt") then
        return
    end
    if KSR.is_ACK() then
        return
    end
    local realm = KSR.pv.get("$fd")
    if KSR.is_REGISTER() and realm ~= nil then
        if KSR.registrar.save("location", 0) < 0 then
            KSR.sl.sl_reply_error()
        end
        return
    end
    KSR.sl.sl_send_reply(404, "Not here")
end
"""


def lua_cfg(cfg: Path, script: Path) -> None:
    """bench/register.py's memory cfg turned into the ``-lua`` variants' (app_lua, LUA_ROUTE)."""
    text = cfg.read_text()
    head = text[:text.index("request_route")]
    head = head.replace('loadmodule "sl.so"\n', 'loadmodule "tm.so"\nloadmodule "sl.so"\n'
                        'loadmodule "maxfwd.so"\nloadmodule "app_lua.so"\n')
    script.write_text(LUA_ROUTE)
    cfg.write_text(head + f'modparam("app_lua", "load", "{script}")\ncfgengine "lua"\n')
SOURCE = Path(__file__).resolve().with_name("wake_ceiling.c")

#: run as the server's entry point: the responder put in place in the worker, then kemi's CLI
LAUNCHER = r'''
import os
import sys
import types

variant = os.environ.get("KEMI_CEILING", "kemi")
counts = os.environ.get("KEMI_CEILING_OPCODES")

from kemi_core.transport import endpoints as _endpoints

_open_udp = _endpoints.WorkerEndpoints.open_udp


def _count_opcodes(path):
    """Bytecodes this (the loop's) thread runs, written to path by a thread of its own."""
    import collections
    import threading
    import time

    from kemi_core.transport import outbox
    outbox.HOLD_SECONDS = 10.0  # the tracer's slowness must not make flush_late send
    per = collections.Counter()

    def tracer(frame, event, arg):
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            per[code.co_filename.rsplit("/", 1)[-1] + ":" + code.co_name] += 1
        return tracer

    def writer():
        while True:
            time.sleep(0.1)
            snap = dict(per)
            with open(path + ".tmp", "w") as fh:
                fh.write(repr(snap))
            os.replace(path + ".tmp", path)

    threading.Thread(target=writer, daemon=True).start()
    sys.settrace(tracer)


def open_udp(self):
    _open_udp(self)
    import wc_resp
    prefix = self.receiver.core.local_tag_prefix  # sl's To-tag prefix (the dispatcher's core)
    wc_resp.set_prefix(prefix)
    for sock in self.udp.values():
        if not sock.read_ahead:
            continue
        if variant == "fast":
            from kemi_core.sip.reply import build_reply, lines_crc32
            on_message = wc_resp.fast_receiver((lines_crc32, build_reply, self.send, prefix))
            sock.receiver = types.SimpleNamespace(on_message=on_message,
                                                  on_bad_message=sock.receiver.on_bad_message)
        elif variant == "c":
            self.loop.remove_reader(sock.fd)
            self.loop.add_reader(sock.fd, wc_resp.c_event, sock.fd)
        elif variant == "cloop":
            self.loop.remove_reader(sock.fd)
            self.loop.add_reader(sock.fd, wc_resp.c_loop, sock.fd, 200)
    if counts:
        _count_opcodes(counts)


_endpoints.WorkerEndpoints.open_udp = open_udp

from kemi_core.cli import app

sys.argv[0] = "kemi"
sys.exit(app())
'''


#: where build() put wc_resp and the launcher
BUILT: list[Path] = []


def build(work: Path) -> None:
    """wc_resp (bench/wake_ceiling.c) built into ``work``, with the launcher."""
    BUILT[:] = [work]
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    include = sysconfig.get_paths()["include"]
    subprocess.run(["cc", "-O2", "-Wall", "-shared", "-fPIC", f"-I{include}", "-o",
                    str(work / f"wc_resp{suffix}"), str(SOURCE), "-lz"], check=True)
    (work / "wc_launch.py").write_text(LAUNCHER)


def server_args(variant: str, work: Path, valgrind: list[str] | None = None
                ) -> tuple[list[str], dict[str, str], int]:
    """(argv, env, port) of one server on bench/register.py's floor (or memory) cfg in
    ``work``."""
    name = "kamailio" if variant.startswith("kamailio") else "kemi"
    mode = "memory" if variant.endswith(("-memory", "-lua")) else "floor"
    cfg, port = register_bench.write_cfg(mode, f"{name}_{mode}", work)
    if variant.endswith("-lua"):
        lua_cfg(cfg, work / f"{name}_route.lua")
    env = dict(os.environ, KEMI_CTL=f"unix:{work}/kemi_ctl", KEMI_CEILING=variant,
               PYTHONPATH=os.pathsep.join(filter(None, [str(BUILT[0]),
                                                        os.environ.get("PYTHONPATH", "")])))
    if name == "kamailio":
        args = kamailio_args(work)(cfg)
    else:
        args = [sys.executable, str(BUILT[0] / "wc_launch.py"), "run", "-f", str(cfg)]
    return [*(valgrind or []), *args], env, port


def register_text(serial: int, user: str, port: int) -> bytes:
    return REGISTER.format(n=serial, user=user, cseq=serial + 1, auth="").replace(
        "127.0.0.1:5060", f"127.0.0.1:{port}").encode()


def ask(sock: socket.socket, port: int, data: bytes) -> bytes:
    sock.sendto(data, ("127.0.0.1", port))
    return sock.recv(65536)


_TAG = re.compile(rb";tag=[0-9a-f]{16}\.")
_STAMP = re.compile(rb";rport=[0-9]+;received=[0-9.]+")


def check_reply(variant: str, answer: bytes, reference: dict[str, bytes]) -> None:
    """Every kemi floor variant's 200 is the floor's (sl's tag prefix is random per server)."""
    if variant.startswith("kamailio") or variant.endswith(("-memory", "-lua")):
        return
    # (the experimental responders answer ;rport as the request has it; the server stamps
    # rport= and received= since the twenty-first stop: a few bytes, not compared)
    normal = _STAMP.sub(b";rport", _TAG.sub(b";tag=P.", answer))
    if not answer.startswith(b"SIP/2.0 200 OK\r\n"):
        raise SystemExit(f"{variant}: the check REGISTER was answered {answer[:60]!r}")
    known = reference.setdefault("floor", normal)
    if normal != known:
        raise SystemExit(f"{variant}: its 200 differs from the floor's:\n{normal!r}\n{known!r}")


class Client:
    """REGISTERs for ``users`` users in turn, ``k`` at a time, a pause after each burst."""

    def __init__(self, port: int, users: int, gap_us: int) -> None:
        self.port, self.users, self.gap, self.serial = port, users, gap_us / 1e6, 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)

    def send(self, count: int, k: int) -> int:
        ok = 0
        for start in range(0, count, k):
            burst = min(k, count - start)
            for _ in range(burst):
                n = self.serial
                self.serial += 1
                self.sock.sendto(register_text(n, f"user{n % self.users:06d}", self.port),
                                 ("127.0.0.1", self.port))
            for _ in range(burst):
                ok += self.sock.recv(65536).startswith(b"SIP/2.0 200 ")
            if self.gap:
                time.sleep(self.gap)
        return ok


def start(variant: str, work: Path, reference: dict[str, bytes],
          valgrind: list[str] | None = None, extra_env: dict[str, str] | None = None
          ) -> tuple[Proc, int]:
    args, env, port = server_args(variant, work, valgrind)
    env.update(extra_env or {})
    proc = Proc(args, work / f"{variant}.log", cwd=work, env=env)
    try:
        if not wait_udp_answer(port, timeout=600 if valgrind else 20):
            raise RuntimeError(f"{variant} did not answer: "
                               + (work / f"{variant}.log").read_text()[-2000:])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(60 if valgrind else 5)
            check_reply(variant, ask(sock, port, register_text(10**6, "check", port)),
                        reference)
    except BaseException:
        proc.stop()
        raise
    return proc, port


def cpu_round(variant: str, work: Path, opts: argparse.Namespace, ks: list[int],
              reference: dict[str, bytes]) -> dict[int, tuple[float, float, float]]:
    """(us per REGISTER: tree, busiest process; sleeps per REGISTER) for each k, one server."""
    proc, port = start(variant, work, reference)
    out = {}
    try:
        client = Client(port, opts.users, opts.gap_us)
        client.send(opts.users, 10)  # the code paths warm (the floor keeps nothing)
        for k in ks:
            before, sleeps0 = cpu_by_pid(proc.pid)
            ok = client.send(opts.count, k)
            after, sleeps1 = cpu_by_pid(proc.pid)
            if ok != opts.count:
                print(f"  {variant} k={k}: {opts.count - ok} REGISTERs not answered 200")
            delta = {pid: after[pid] - before.get(pid, 0) for pid in after}
            n = max(ok, 1)
            out[k] = (sum(delta.values()) / n / 1e3, max(delta.values()) / n / 1e3,
                      (sleeps1 - sleeps0) / n)
    finally:
        proc.stop()
    return out


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def cpu(opts: argparse.Namespace, variants: list[str], ks: list[int], work: Path) -> dict:
    runs: dict[str, dict[int, list[tuple[float, float, float]]]] = {
        v: {k: [] for k in ks} for v in variants}
    reference: dict[str, bytes] = {}
    for r in range(opts.rounds):
        order = variants if r % 2 == 0 else variants[::-1]
        for variant in order:
            for k, value in cpu_round(variant, work, opts, ks if r % 2 == 0 else ks[::-1],
                                      reference).items():
                runs[variant][k].append(value)
            print(f"  round {r + 1} {variant}: " + "  ".join(
                f"k={k} {runs[variant][k][-1][1]:.1f}" for k in ks), flush=True)
    result: dict = {"gap_us": opts.gap_us, "count": opts.count, "variants": {}}
    print(f"\nus CPU per REGISTER, worker (tree), best / median of {opts.rounds}; "
          "sleeps per REGISTER")
    for variant in variants:
        rows = {}
        for k in ks:
            values = runs[variant][k]
            worker = [w for _, w, _ in values]
            tree = [t for t, _, _ in values]
            sleeps = sum(s for _, _, s in values) / len(values)
            rows[k] = {"worker_us": [round(w, 1) for w in worker],
                       "tree_us": [round(t, 1) for t in tree],
                       "best_worker_us": round(min(worker), 1),
                       "median_worker_us": round(_median(worker), 1),
                       "best_tree_us": round(min(tree), 1),
                       "median_tree_us": round(_median(tree), 1),
                       "sleeps_per_register": round(sleeps, 3)}
            print(f"{variant:15} k={k:3}: worker {min(worker):6.1f} / {_median(worker):6.1f}"
                  f"  tree {min(tree):6.1f} / {_median(tree):6.1f}  sleeps {sleeps:.3f}  "
                  "rounds " + " ".join(f"{w:.1f}" for w in worker))
        result["variants"][variant] = rows
    for yardstick in ("kamailio", "kamailio-memory", "kamailio-lua"):
        if yardstick not in variants:
            continue
        print(f"\nratio to {yardstick} (median worker / median worker)")
        for variant in variants:
            if variant.startswith("kamailio"):
                continue
            ratios = {k: result["variants"][variant][k]["median_worker_us"]
                      / result["variants"][yardstick][k]["median_worker_us"] for k in ks}
            result["variants"][variant][f"ratio_to_{yardstick}"] = {
                k: round(v, 2) for k, v in ratios.items()}
            print(f"{variant:15} " + "  ".join(f"k={k} {v:.2f}" for k, v in ratios.items()))
    if len(ks) >= 2:
        lo, hi = min(ks), max(ks)
        print(f"\nfit cpu(k) = per_request + per_wake / k (medians at k={lo} and k={hi})")
        for variant in variants:
            a = result["variants"][variant][lo]["median_worker_us"]
            b = result["variants"][variant][hi]["median_worker_us"]
            per_wake = (a - b) / (1 / lo - 1 / hi)
            result["variants"][variant]["fit"] = {
                "per_wake_us": round(per_wake, 1), "per_request_us": round(b - per_wake / hi, 1)}
            print(f"{variant:15} per wake {per_wake:6.1f} us, per request "
                  f"{b - per_wake / hi:6.1f} us")
    return result


def opcodes(opts: argparse.Namespace, variants: list[str], ks: list[int], work: Path) -> dict:
    """Python bytecodes the worker's loop thread runs per burst (per wake-up)."""
    result: dict = {}
    reference: dict[str, bytes] = {}
    for variant in variants:
        if variant.startswith("kamailio"):
            continue
        path = work / f"opcodes.{variant}"
        proc, port = start(variant, work, reference, extra_env={"KEMI_CEILING_OPCODES": str(path)})
        try:
            client = Client(port, opts.users, opts.gap_us)
            client.send(opts.users, 10)
            result[variant] = {}
            for k in ks:
                bursts = -(-opts.count // k)
                time.sleep(0.3)
                before = eval(path.read_text())  # noqa: S307 - a dict's repr this bench wrote
                client.send(opts.count, k)
                time.sleep(0.3)
                after = eval(path.read_text())  # noqa: S307
                delta = {f: after[f] - before.get(f, 0) for f in after
                         if after[f] != before.get(f, 0)}
                total = sum(delta.values())
                top = sorted(delta.items(), key=lambda kv: -kv[1])[:8]
                result[variant][k] = {"per_burst": round(total / bursts, 1),
                                      "per_register": round(total / opts.count, 1),
                                      "top": {f: round(v / bursts, 1) for f, v in top}}
                print(f"{variant:6} k={k:3}: bytecodes per burst {total / bursts:8.1f}, per "
                      f"REGISTER {total / opts.count:7.1f}; " + ", ".join(
                          f"{f} {v / bursts:.1f}" for f, v in top[:5]), flush=True)
        finally:
            proc.stop()
    return result


def callgrind(opts: argparse.Namespace, variants: list[str], work: Path) -> dict:
    """Instructions and warm L1 misses per REGISTER of the busiest process, under callgrind."""
    events = ["Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw"]
    result: dict = {}
    reference: dict[str, bytes] = {}
    for variant in variants:

        def one(n: int, variant: str = variant) -> list[int]:
            run = (Path(opts.keep) if opts.keep else work) / f"cg-{variant}-{n}"
            run.mkdir(parents=True)
            valgrind = ["valgrind", "--tool=callgrind", "--cache-sim=yes", *CACHES,
                        f"--callgrind-out-file={run}/cg.%p"]
            proc, port = start(variant, run, reference, valgrind=valgrind,
                               extra_env={"PYTHONHASHSEED": "0"})
            try:
                registers(port, 0, opts.users, opts.users, 1)
                ok = registers(port, opts.users, n, opts.users, opts.cg_k)
                if ok != n:
                    raise RuntimeError(f"{variant}: {n - ok} REGISTERs not answered 200")
            finally:
                proc.stop()
            totals = [_totals(f) for f in run.glob("cg.*")]
            return max(totals, key=lambda row: row[0] if row else 0)

        small, big = one(opts.requests), one(3 * opts.requests)
        per = {e: (big[i] - small[i]) / (2 * opts.requests) for i, e in enumerate(events)}
        result[variant] = {e: round(v, 1) for e, v in per.items()}
        print(f"{variant:15} k={opts.cg_k}: per REGISTER " + "  ".join(
            f"{e} {per[e]:,.0f}" for e in events if e not in ("Dr", "Dw")), flush=True)
    return result


def _save_harness(work: Path, users: int, count: int, flush_kb: int,
                  on_save: Callable[[bool], None], on_reply: Callable[[bool], None]
                  ) -> tuple[Callable[[bytes], None], list[bytes], Any, list[int]]:
    """bench/wake_set.py's in-process memory worker with save()'s compiled call wrapped:
    ``on_save(True/False)`` around reg_save_usual, ``on_reply(True/False)`` around the 200 it
    sends through sl (the floor's part, left out). Returns the request handler, the requests, the
    flush helper and a list that counts the REGISTERs reg_save_usual left to Python."""
    import importlib

    import wake_set

    saving = importlib.import_module("kemi_registrar.save")  # (the package's save is the function)
    helper = wake_set.Helper(work, flush_kb << 10)
    handle, batch = wake_set._setup("memory", work, users, count)
    st = saving.held.current or saving.state()
    usual = list(st.usual)
    send_reply = usual[8]  # consts' sl.send_reply (kemi_registrar/usual.py)

    def reply_outside(*args: Any) -> Any:
        on_reply(True)
        try:
            return send_reply(*args)
        finally:
            on_reply(False)

    usual[8] = reply_outside
    st.usual = tuple(usual)
    compiled = saving.save_usual
    left = [0]

    def save_inside(consts: Any, ctx: Any, table: str, flags: int, uri: Any) -> Any:
        on_save(True)
        try:
            rc = compiled(consts, ctx, table, flags, uri)
        finally:
            on_save(False)
        left[0] += rc is None
        return rc

    saving.save_usual = save_inside
    return handle, batch, helper, left


def save_time(opts: argparse.Namespace) -> dict:
    """Thread CPU time of reg_save_usual's own C per REGISTER (its reply left out), in
    process, after a --flush-kb flush (cold) and back to back (warm)."""
    clock = time.thread_time_ns
    spent = [0]
    marks: list[int] = [0, 0]

    def on_save(entering: bool) -> None:
        if entering:
            marks[0] = clock()
        else:
            spent[0] = clock() - marks[0] - marks[1]
            marks[1] = 0

    def on_reply(entering: bool) -> None:
        now = clock()
        if entering:
            marks[1] -= now
        else:
            marks[1] += now

    n = opts.requests
    with tempfile.TemporaryDirectory(prefix="kemi-wake-ceiling-save-") as tmp:
        handle, batch, helper, left = _save_harness(Path(tmp), opts.users, 2 * n * opts.rounds,
                                                    opts.flush_kb, on_save, on_reply)
        cold: list[float] = []
        warm: list[float] = []
        # the clock's own cost inside the measured span: two reads around nothing
        t0 = clock()
        t1 = clock()
        overhead = t1 - t0
        for r in range(opts.rounds):
            part = batch[2 * n * r: 2 * n * (r + 1)]
            for data in part[:n]:
                helper.flush()
                handle(data)
                cold.append(spent[0] - 2 * overhead)
            for data in part[n:]:
                handle(data)
                warm.append(spent[0] - 2 * overhead)
    out = {"cold_us": round(_median(cold) / 1e3, 2), "warm_us": round(_median(warm) / 1e3, 2),
           "flush_kb": opts.flush_kb, "left_to_python": left[0]}
    print(f"reg_save_usual's own C per memory REGISTER (its 200 left out), median of "
          f"{len(cold)}: cold (after a {opts.flush_kb} KiB flush) {out['cold_us']} us, warm "
          f"{out['warm_us']} us; REGISTERs it left to Python: {left[0]}")
    return out


def save_inner(opts: argparse.Namespace) -> int:
    """Under callgrind (collection off at start): reg_save_usual's own C collected, cold and
    warm, then the toggles alone (subtracted)."""
    n = opts.requests
    with tempfile.TemporaryDirectory(prefix="kemi-wake-ceiling-save-") as tmp:
        toggles: list[Callable[[], None]] = []
        handle, batch, helper, left = _save_harness(
            Path(tmp), opts.users, 3 * n, 4 * 1024 * 16, lambda _on: toggles[0](),
            lambda _on: toggles[0]())
        toggles.append(helper.toggle)
        helper.dump("start")
        for data in batch[:n]:
            helper.flush()
            handle(data)
        helper.dump("cold")
        for data in batch[n:2 * n]:
            handle(data)
        helper.dump("warm")
        for _ in range(n):
            helper.flush()
            for _ in range(4):
                helper.toggle()
        helper.dump("empty")
        if left[0]:
            print(f"{left[0]} REGISTERs left to Python", file=sys.stderr)
    return 0


def save_callgrind(opts: argparse.Namespace) -> dict:
    """Instructions and cache misses of reg_save_usual's own C per REGISTER, cold and warm."""
    import wake_set

    with tempfile.TemporaryDirectory(prefix="kemi-wake-ceiling-savecg-") as tmp:
        out = Path(tmp) / "callgrind.save"
        subprocess.run(["valgrind", "--tool=callgrind", "--cache-sim=yes", *CACHES,
                        "--collect-atstart=no", f"--callgrind-out-file={out}", sys.executable,
                        __file__, "--save-inner", "--requests", str(opts.requests),
                        "--users", str(opts.users)],
                       check=True, env=dict(os.environ, PYTHONHASHSEED="0"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dumps = wake_set._dumps(out)
        parsed = {label: wake_set.parse_callgrind(dumps[label])
                  for label in ("cold", "warm", "empty")}
    events = parsed["cold"][0]
    result: dict = {}
    for phase in ("cold", "warm"):
        by_object: dict[str, list[float]] = {}
        for label, sign in ((phase, 1), ("empty", -1)):
            for (ob, _fn), row in parsed[label][1].items():
                acc = by_object.setdefault(wake_set._short_object(ob), [0.0] * len(events))
                for i, value in enumerate(row):
                    acc[i] += sign * value / opts.requests
        total = [sum(row[i] for row in by_object.values()) for i in range(len(events))]
        result[phase] = {"total": {e: round(total[i], 1) for i, e in enumerate(events)},
                         "by_object": {ob: {e: round(row[i], 1) for i, e in enumerate(events)}
                                       for ob, row in by_object.items()
                                       if max(abs(x) for x in row) >= 1}}
        print(f"reg_save_usual's own C, {phase}: per REGISTER " + "  ".join(
            f"{e} {total[i]:,.0f}" for i, e in enumerate(events)))
        for ob, row in sorted(by_object.items(), key=lambda kv: -kv[1][0])[:8]:
            if max(abs(x) for x in row) >= 1:
                print(f"  {ob[:40]:40} " + " ".join(f"{x:9,.0f}" for x in row))
        # (the functions: the interpreter's share is its C API on objects, or bytecode run for
        # Python that the compiled call calls back: the eval loop's lines)
        costs = parsed[phase][1]
        ranked = sorted(costs.items(), key=lambda kv: -kv[1][0])[:opts.top]
        result[phase]["top"] = {f"{fn} ({wake_set._short_object(ob)})": round(row[0] / opts.requests)
                                for (ob, fn), row in ranked}
        print(f"  top functions by Ir ({phase}, toggles not subtracted):")
        for (ob, fn), row in ranked:
            print(f"    {row[0] / opts.requests:8,.0f}  {fn[:60]} ({wake_set._short_object(ob)[:24]})")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--ks", default="1,5,50")
    parser.add_argument("--count", type=int, default=2000, help="REGISTERs per k and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--gap-us", type=int, default=300, help="pause after each burst (us)")
    parser.add_argument("--opcodes", action="store_true", help="bytecodes per burst instead")
    parser.add_argument("--callgrind", action="store_true",
                        help="instructions and warm L1 misses per REGISTER instead")
    parser.add_argument("--cg-k", type=int, default=1, help="--callgrind: REGISTERs per burst")
    parser.add_argument("--requests", type=int, default=300, help="--callgrind: N (and 3N)")
    parser.add_argument("--keep", help="--callgrind: keep each run's dumps under this directory "
                                       "(for callgrind_annotate)")
    parser.add_argument("--save", action="store_true",
                        help="reg_save_usual's own C in process (time; with --callgrind: counts)")
    parser.add_argument("--flush-kb", type=int, default=4096,
                        help="--save: the buffer written before a cold REGISTER (KiB)")
    parser.add_argument("--top", type=int, default=20, help="--save --callgrind: functions")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--save-inner", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.save_inner:
        return save_inner(opts)
    if opts.save:
        summary = save_callgrind(opts) if opts.callgrind else save_time(opts)
        if opts.json:
            Path(opts.json).write_text(json.dumps(summary, indent=1))
        return 0
    variants = [v for v in opts.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    if not kamailio_available():
        print("kamailio 5.6 not installed: measuring kemi alone")
        variants = [v for v in variants if not v.startswith("kamailio")]
    ks = [int(x) for x in opts.ks.split(",")]
    with tempfile.TemporaryDirectory(prefix="kemi-wake-ceiling-") as tmp:
        work = Path(tmp)
        build(work)
        if opts.callgrind:
            result = callgrind(opts, variants, work)
        elif opts.opcodes:
            result = opcodes(opts, variants, ks, work)
        else:
            result = cpu(opts, variants, ks, work)
    result = {"mode": "callgrind" if opts.callgrind else "opcodes" if opts.opcodes else "cpu",
              "load": round(os.getloadavg()[0], 2), "result": result}
    print(json.dumps(result))
    if opts.json:
        Path(opts.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
