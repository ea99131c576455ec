"""Memory per in-flight INVITE transaction: kemi beside Kamailio 5.6's shared memory.

10,000 INVITEs (each its own call, SIPp's uac INVITE with SDP) are relayed statefully to a
UDP socket that never answers, so every transaction stays in flight (waiting for fr_timer):
- kemi, in process (bench/callpath.py's harness, native routes, no timer fires): bytes that
  tracemalloc sees allocated for the 10,000 transactions (the received request's copy, the
  branch's copy with our Via, the server and client machines, timers, table entries);
- kemi as a server (``kemi run``, the stateful benchmark's native cfg): the worker's RSS growth;
- Kamailio 5.6 on the same cfg: ``core.shmmem`` used before and after (kamcmd), divided by
  10,000. Kamailio keeps its transactions in shared memory; its per-process (pkg) memory does
  not grow per transaction.

    python bench/tm_memory.py [--transactions 10000]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import socket
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from callpath import SDP, Harness, uac_request  # noqa: E402
from common import Proc, kamailio_args, kamailio_available, tree_pids, wait_udp_answer  # noqa: E402
from stateful import write_setup  # noqa: E402

from kemi_core.sip import SipParseError, build_reply, parse_datagram  # noqa: E402
from kemi_core.testing.kamailio import kamcmd  # noqa: E402
from kemi_core.testing.process import kemi_executable  # noqa: E402

ENGINE = "native"


def invite(port: int, n: int) -> bytes:
    return uac_request("INVITE", port, n, 1, f"{n}-1-0", body=SDP)


def in_process(count: int) -> dict:
    """tracemalloc's view: bytes held per in-flight transaction in one worker's core."""
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="kemi-tm-memory-") as tmp:
        h = Harness(ENGINE, Path(tmp), 1500)
        on_data, port, rcv = h.dispatcher.on_data, h.port, h.from_uac
        for n in range(1, 201):  # warm the caches (names, parsed lines) outside the count
            on_data(invite(port, 10_000_000 + n), rcv)
        messages = [invite(port, n) for n in range(1, count + 1)]  # made before the count
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for data in messages:
            on_data(data, rcv)
        h.wire.to_uas.clear()  # the harness keeps what it "sent": not the server's memory
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        table = h.core.services["tm"].table  # type: ignore[attr-defined]
        in_flight = sum(1 for tx in table.transactions() if not tx.final_status)
    if in_flight < count:
        raise SystemExit(f"only {in_flight} of {count} transactions in flight")
    return {"transactions": count, "bytes_per_transaction": round(held / count)}


def _send_invites(port: int, count: int, rate: int) -> None:
    """``count`` INVITEs from one UDP socket at ``rate``/s; the 100 Trying answers are read
    and dropped (a UAC that waits forever)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        start = time.monotonic()
        for n in range(1, count + 1):
            sock.sendto(invite(port, n), ("127.0.0.1", port))
            ahead = n / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)  # pacing the load, not waiting for a result
            try:
                while True:
                    sock.recv(65535)
            except BlockingIOError:
                pass


class SilentUas:
    """A UAS that answers OPTIONS (the servers' readiness probe goes through the route) and
    nothing else: INVITEs and their retransmissions get no answer."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:  # the timeout: look at self.running again
                continue
            if data.startswith(b"OPTIONS "):
                try:
                    reply = build_reply(parse_datagram(data), 200, "OK", to_tag="silent")
                except SipParseError:
                    continue
                self.sock.sendto(reply, addr)

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=5)
        self.sock.close()


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _shm_used(ctl: str) -> int:
    out = kamcmd(ctl, "core.shmmem").stdout
    for line in out.splitlines():
        name, _, value = line.strip().partition(":")
        if name.strip() == "used":
            return int(value.strip())
    raise RuntimeError(f"no 'used' in core.shmmem: {out!r}")


def server(name: str, count: int, rate: int, work: Path,
           measure: Callable[[Proc, Path], int]) -> int:
    """Start ``name`` (kemi or kamailio) on the native cfg whose UAS never answers, send
    ``count`` INVITEs; ``measure(proc, work)`` before and after: the growth."""
    uas = SilentUas()
    try:
        cfg, port, _ = write_setup(ENGINE, f"{name}_mem", work, uas_port=uas.port)
        ctl = work / f"{name}.ctl"
        if name == "kamailio":
            with open(cfg, "a") as fh:
                fh.write(f'loadmodule "ctl.so"\nmodparam("ctl", "binrpc", "unix:{ctl}")\n')
            args = kamailio_args(work)(cfg)
        else:
            args = ["env", f"KEMI_CTL={ctl}", *kemi_executable(), "run", "-f", str(cfg)]
        proc = Proc(args, work / f"{name}_mem.log", cwd=work)
        try:
            if not wait_udp_answer(port):
                raise RuntimeError(f"{name} did not answer; see {work}/{name}_mem.log")
            before = measure(proc, work)
            _send_invites(port, count, rate)
            return measure(proc, work) - before
        finally:
            proc.stop()
    finally:
        uas.close()


def kemi_rss(proc: Proc, work: Path) -> int:
    worker = tree_pids(proc.pid)[-1]  # one worker (children=1): the last process started
    return _rss_kb(worker) * 1024


def kamailio_shm(proc: Proc, work: Path) -> int:
    return _shm_used(f"unix:{work / 'kamailio.ctl'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transactions", type=int, default=10_000)
    ap.add_argument("--rate", type=int, default=2000, help="INVITEs per second to the servers")
    args = ap.parse_args()
    count = args.transactions
    out: dict = {"benchmark": "tm_memory", "kemi_in_process": in_process(count)}
    print(f"kemi in process: {out['kemi_in_process']['bytes_per_transaction']} bytes per "
          "in-flight INVITE transaction (tracemalloc)", flush=True)
    with tempfile.TemporaryDirectory(prefix="kemi-tm-memory-") as tmp:
        work = Path(tmp)
        grown = server("kemi", count, args.rate, work, kemi_rss)
        out["kemi_server_rss_bytes_per_transaction"] = round(grown / count)
        print(f"kemi server: worker RSS +{grown / count:.0f} bytes per transaction", flush=True)
        if kamailio_available():
            used = server("kamailio", count, args.rate, work, kamailio_shm)
            out["kamailio_shm_bytes_per_transaction"] = round(used / count)
            print(f"Kamailio 5.6: shm used +{used / count:.0f} bytes per transaction",
                  flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
