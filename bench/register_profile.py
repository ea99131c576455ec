"""Where a REGISTER's time goes inside kemi: one worker in this process (no sockets, no SIPp).

The config of bench/register.py (``memory``, ``sqlite``: usrloc write-through, ``floor``: a bare
200), of bench/auth.py (``auth``: digest check against SQLite's subscriber table, then save) or
of bench/stateless.py (``options``: OPTIONS answered 200 by the Lua script, in place of REGISTER)
runs in a :class:`kemi_core.testing.router.Router`; its sends go to a counting sink (``--sink
udp``: through the worker's real UDP send path instead, WorkerEndpoints on 127.0.0.1 sending to
a local socket read back here, the sends held ``--burst`` at a time as when a readiness event
brings that many; the in-process figure then has the server's send path in it). REGISTERs
for ``--users`` users in turn go through the dispatcher as a worker receives them (the first
pass inserts bindings, later ones refresh them). Printed: CPU microseconds per REGISTER
(process time, best of ``--rounds``), and with ``--profile`` the top functions by cumulative
and by own time. ``--callgrind`` counts instructions per REGISTER instead (deterministic: runs
under valgrind's callgrind, ``--count`` and twice that, the difference divided, less what
making the messages costs, measured the same way; for ``auth`` the answers' nonces are made
without sending the challenges).

    python bench/register_profile.py [--mode memory|sqlite|floor|auth|options] [--count 5000]
                                     [--sink count|udp [--burst 1]] [--db-mode 1|2]
                                     [--db-dir /dev/shm]
                                     [--profile [--profile-out FILE] | --callgrind]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import os
import pstats
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import auth as auth_bench  # noqa: E402
import register as register_bench  # noqa: E402
import stateless as stateless_bench  # noqa: E402
from callpath import callgrind_total  # noqa: E402

from kemi_core.config.model import ListenAddr  # noqa: E402
from kemi_core.runtime.context import RecvInfo  # noqa: E402
from kemi_core.runtime.worker import tune_gc  # noqa: E402
from kemi_core.sip import ParseLimits, parse_datagram  # noqa: E402
from kemi_core.testing.process import free_port  # noqa: E402
from kemi_core.testing.router import Router  # noqa: E402
from kemi_core.transport.endpoints import WorkerEndpoints  # noqa: E402
from kemi_core.transport.outbox import Outbox  # noqa: E402

REGISTER = (
    "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{n}-1;rport\r\n"
    "From: <sip:{user}@127.0.0.1>;tag={n}SIPpTag001\r\n"
    "To: <sip:{user}@127.0.0.1>\r\n"
    "Call-ID: {n}-reg@127.0.0.1\r\n"
    "CSeq: {cseq} REGISTER\r\n"
    "Contact: <sip:{user}@127.0.0.1:5070>\r\n"
    "Max-Forwards: 70\r\n"
    "Expires: 3600\r\n"
    "User-Agent: SIPp register bench\r\n"
    "{auth}"
    "Content-Length: 0\r\n\r\n")

#: what SIPp sends in bench/stateless.py (scenarios/options_uac.xml)
OPTIONS = (
    "OPTIONS sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{n}-1;rport\r\n"
    "From: <sip:sipp@127.0.0.1:5070>;tag=1234SIPpTag00{n}\r\n"
    "To: <sip:service@127.0.0.1:5060>\r\n"
    "Call-ID: {n}-1234@127.0.0.1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Contact: <sip:sipp@127.0.0.1:5070>\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n")


class Sink:
    """The worker's transport: counts what would be sent, keeps the last datagram."""

    def __init__(self, listen: list) -> None:
        self.listen = listen
        self.count = 0
        self.last = b""
        #: where the REGISTERs come from (the replies go there) and arrive
        self.rcv = RecvInfo("udp", "127.0.0.1", 5070, "127.0.0.1", 5060)

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool:
        self.count += 1
        self.last = data
        return True

    def local_address(self, proto: str) -> tuple[str, int]:
        return (self.listen[0].host, self.listen[0].port)


class UdpSink:
    """The worker's real UDP transport: a WorkerEndpoints listening on 127.0.0.1 (a free port)
    whose sends (endpoints.send, the outbox, sendto) go to a local socket, read back by
    ``count`` and ``last`` (outside the timed loop: the socket's buffer keeps a round)."""

    def __init__(self, router: Router) -> None:
        self.loop = asyncio.new_event_loop()
        self.peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:  # a round's replies wait here until read (root: past rmem_max)
            self.peer.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
        except OSError:
            self.peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
        self.peer.bind(("127.0.0.1", 0))
        self.peer.setblocking(False)
        port = free_port()
        self.ep = WorkerEndpoints(self.loop, [ListenAddr("udp", "127.0.0.1", port)],
                                  router.dispatcher, ParseLimits(), False)
        self.loop.run_until_complete(self.ep.start())
        router.core.attach_transport(self.ep)
        self.rcv = RecvInfo("udp", "127.0.0.1", self.peer.getsockname()[1], "127.0.0.1", port)
        self.received = 0
        self.got = b""

    def _read(self) -> None:
        while True:
            try:
                self.got = self.peer.recv(65536)
            except BlockingIOError:
                return
            self.received += 1

    @property
    def count(self) -> int:
        self._read()
        return self.received

    @property
    def last(self) -> bytes:
        self._read()
        return self.got

    def close(self) -> None:
        self.ep.close()
        self.peer.close()
        self.loop.close()


def _router(mode: str, work: Path, db_mode: int = 1, db_dir: Path | None = None) -> Router:
    if mode == "auth":
        db = work / "auth.db"
        auth_bench.make_db(db)
        script = work / "auth.lua"
        script.write_text(auth_bench.LUA.replace("{uas_port}", "5090"))
        cfg = work / "auth.cfg"
        cfg.write_text(auth_bench.CFG.format(port=5060, mpath="", db=db, script=script,
                                             children=1))
    elif mode == "options":
        script = work / "stateless.lua"
        script.write_text(stateless_bench.LUA)
        cfg = work / "stateless.cfg"
        cfg.write_text(stateless_bench.CFG.format(port=5060, mpath="", script=script))
    else:
        cfg, _port = register_bench.write_cfg(mode, mode, work,
                                              dbo=register_bench.DbOptions(db_mode, db_dir))
    return Router(cfg)


def _nonce_of(challenge: bytes) -> str:
    text = challenge.decode()
    start = text.index('nonce="') + 7
    return text[start:text.index('"', start)]


def _digest(nonce: str, user: str, cseq: int) -> str:
    """An Authorization header answering a 401 with ``nonce`` (MD5, qop=auth)."""
    realm = "127.0.0.1"
    uri = "sip:127.0.0.1:5060"
    ha1 = hashlib.md5(f"{user}:{realm}:{auth_bench.PASSWORD}".encode()).hexdigest()
    ha2 = hashlib.md5(f"REGISTER:{uri}".encode()).hexdigest()
    nc, cnonce = "00000001", f"c{cseq}"
    resp = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
    return (f'Authorization: Digest username="{user}",realm="{realm}",nonce="{nonce}",'
            f'uri="{uri}",response="{resp}",algorithm=MD5,qop=auth,nc={nc},cnonce="{cnonce}"\r\n')


def _messages(mode: str, router: Router, sink: Sink | UdpSink, users: int,
              count: int, offline: bool = False) -> Callable[[int], list[bytes]]:
    """The datagrams of one round: ``count`` REGISTERs (auth: each a challenged one and the
    answered one, the answers computed from real 401s before the round is timed; ``offline``:
    from a nonce auth makes for the first REGISTER without sending it, so that building a round
    runs no request through the server: what --callgrind needs)."""
    rcv = sink.rcv

    def nonce_for(first: bytes) -> str:
        if offline:
            import kemi_auth

            ctx = router.core.new_context(parse_datagram(first), rcv)
            return kemi_auth.api().new_nonce(ctx, False)  # auth_challenge(realm, 0)'s
        router.dispatcher.on_data(first, rcv)
        return _nonce_of(sink.last)

    def make(round_no: int) -> list[bytes]:
        out = []
        for n in range(count):
            user = (auth_bench.USER if mode == "auth" else f"user{n % users:06d}")
            serial = round_no * count + n
            if mode == "options":
                out.append(OPTIONS.format(n=serial).encode())
                continue
            first = REGISTER.format(n=serial, user=user, cseq=2 * serial + 1, auth="").encode()
            if mode != "auth":
                out.append(first)
                continue
            answer = REGISTER.format(n=serial, user=user, cseq=2 * serial + 2,
                                     auth=_digest(nonce_for(first), user, serial)).encode()
            out += [first, answer]
        return out

    return make


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["memory", "sqlite", "floor", "auth", "options"], default="memory")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--db-dir", type=Path, default=None,
                        help="sqlite: where the database file goes (/dev/shm: no disk wait)")
    parser.add_argument("--db-mode", type=int, choices=[1, 2], default=1,
                        help="sqlite: usrloc's db_mode (2: write-back, the REGISTER's part only:"
                             " the timer's flush does not run here)")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--profile-out", help="with --profile: also write the raw pstats here")
    parser.add_argument("--callgrind", action="store_true",
                        help="instructions per REGISTER under valgrind (deterministic)")
    parser.add_argument("--sink", choices=["count", "udp"], default="count",
                        help="udp: the replies go through the worker's real UDP send path")
    parser.add_argument("--burst", type=int, default=1,
                        help="with --sink udp: sends held this many requests at a time")
    parser.add_argument("--offline-nonces", action="store_true", help=argparse.SUPPRESS)
    # (--callgrind's baseline: the rounds' messages made, none of the round dispatched)
    parser.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.callgrind:
        return callgrind(opts.mode, opts.count, opts.users, opts.sink, opts.burst, opts.db_mode)
    with tempfile.TemporaryDirectory(prefix="kemi-register-profile-") as tmp:
        db_dir = Path(tempfile.mkdtemp(dir=opts.db_dir)) if opts.db_dir else None
        router = _router(opts.mode, Path(tmp), opts.db_mode, db_dir)
        sink: Sink | UdpSink
        if opts.sink == "udp":
            sink = UdpSink(router)
        else:
            sink = Sink(router.wire.listen)
            router.core.attach_transport(sink)
        rcv = sink.rcv
        on_data = router.dispatcher.on_data
        if opts.sink == "udp" and opts.burst > 1:
            on_data = _held(on_data, sink.ep.outbox, opts.burst)
        make = _messages(opts.mode, router, sink, opts.users, opts.count, opts.offline_nonces)
        for data in make(0)[: 2 * opts.users]:  # warm-up: every user registered once
            on_data(data, rcv)
        tune_gc()  # as a worker does once it is set up
        best = float("inf")
        prof = cProfile.Profile() if opts.profile else None
        for r in range(1, opts.rounds + 1):
            batch = make(r)
            if opts.build_only:
                continue
            sent = sink.count
            if prof is not None:
                prof.enable()
            start = time.process_time()
            for data in batch:
                on_data(data, rcv)
            elapsed = time.process_time() - start
            if prof is not None:
                prof.disable()
            if sink.count - sent != len(batch):
                raise SystemExit(f"{len(batch)} requests, {sink.count - sent} replies")
            if opts.mode == "sqlite" and opts.db_mode == 1 and r == 1:
                _check_rows((db_dir or Path(tmp)) / "sqlite.db", opts.users)
            best = min(best, elapsed / opts.count)
        if opts.build_only:
            _close(router, sink)
            if db_dir is not None:
                shutil.rmtree(db_dir, ignore_errors=True)
            return 0
        print(sink.last.decode().split("\r\n")[0])
        print(f"{opts.mode}: {best * 1e6:.1f} us CPU per REGISTER "
              f"({'challenge + answer' if opts.mode == 'auth' else 'one request'})")
        if prof is not None:
            if opts.profile_out:
                prof.dump_stats(opts.profile_out)
            stats = pstats.Stats(prof)
            stats.sort_stats("cumulative").print_stats(opts.top)
            stats.sort_stats("tottime").print_stats(opts.top)
        _close(router, sink)
        if db_dir is not None:
            shutil.rmtree(db_dir, ignore_errors=True)
    return 0


def _held(on_data: Callable[[bytes, RecvInfo], None], box: Outbox,
          burst: int) -> Callable[[bytes, RecvInfo], None]:
    """on_data with the worker's sends held ``burst`` requests at a time (one readiness event
    bringing that many, udp.py's read-ahead)."""
    seen = [0]

    def held(data: bytes, rcv: RecvInfo) -> None:
        if seen[0] % burst == 0:
            box.hold()
        on_data(data, rcv)
        seen[0] += 1
        if seen[0] % burst == 0:
            box.release()

    return held


def _close(router: Router, sink: Sink | UdpSink) -> None:
    if isinstance(sink, UdpSink):
        if sink.ep.outbox.held is not None:
            sink.ep.outbox.release()
        sink.close()
    router.close()


def callgrind(mode: str, count: int, users: int, sink: str = "count", burst: int = 1,
              db_mode: int = 1) -> int:
    """(Ir with 2N REGISTERs - Ir with N) / N: start-up and warm-up cancelled out; less the same
    difference of runs that only make the messages (str.format of each REGISTER, ~16k
    instructions, and for auth the nonce and the client's digest), so that the figure is the
    server's work alone (auth: a REGISTER is the challenged one and the answered one)."""
    totals: dict[tuple[int, bool], int] = {}
    with tempfile.TemporaryDirectory(prefix="kemi-callgrind-") as tmp:
        for n in (count, 2 * count):
            for build_only in (False, True):
                out = Path(tmp) / f"callgrind.{n}.{int(build_only)}"
                subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                sys.executable, __file__, "--mode", mode, "--count", str(n),
                                "--users", str(users), "--rounds", "1", "--offline-nonces",
                                "--sink", sink, "--burst", str(burst), "--db-mode", str(db_mode),
                                *(["--build-only"] if build_only else [])],
                               check=True, env=dict(os.environ, PYTHONHASHSEED="0"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                totals[n, build_only] = callgrind_total(out)
    whole = (totals[2 * count, False] - totals[count, False]) / count
    made = (totals[2 * count, True] - totals[count, True]) / count
    print(f"{mode}: {round(whole - made):,} instructions per REGISTER "
          f"(making the messages, {round(made):,} more, left out)")
    return 0


def _check_rows(db: Path, users: int) -> None:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT COUNT(*) FROM location").fetchone()[0]
    if rows != users:
        raise SystemExit(f"write-through: {rows} rows in location, {users} users registered")


if __name__ == "__main__":
    raise SystemExit(main())
