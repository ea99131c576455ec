"""SIP over TLS, kemi beside Kamailio 5.6 with the same kamailio.cfg and Lua script
(kemi_websocket.webrtc_cfg, 2 workers each): TLS handshakes per second with the server's CPU
per handshake, and the server's CPU per call over TLS and, for comparison, over plain TCP.
Debian's SIPp has no TLS: the load client is here (asyncio + ssl, uvloop when installed).

* handshakes: CONCURRENCY clients each connect, complete a TLS 1.3 handshake (ECDSA P-256
  certificates made per run), send an OPTIONS, read its 200 and close;
* calls: a callee and a caller registered over TLS (then over TCP); each call is INVITE / 200 /
  ACK / BYE / 200 through the proxy (Record-Route, tm, registrar lookup), CALL_LOOPS at a time.

Both servers run at once and take turns (``--rounds``), so load from elsewhere on the machine
falls on both alike. kemi's workers take connections at random (SO_REUSEPORT): a call step's
caller and callee land on one worker or on two, and a call between two workers costs more (its
messages are handed over between them); each kemi step's placement and CPU per call are listed
after the table. Reported: rates and the server's CPU (all its processes, from /proc) per
unit, the ratios kemi / Kamailio of the CPU per unit (the goal: <= 1.0), and what TLS itself
adds to a call (TLS minus TCP) on each.

Kamailio 5.6.3 with OpenSSL 3 (Debian 12) loses a TCP reader now and then under the handshake
load (SIGSEGV after "qm_free(): BUG: freeing already freed pointer ... tls_init.c: ser_free",
kamailio/kamailio#3791), and its main process then stops the whole server: its TLS port
refuses the next step's connections. A server that died during a step is started again and
the step repeated (its CPU so far died with it); the report lists each restart.

    .venv/bin/python bench/tls.py [--handshakes N] [--calls N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import KAMAILIO_MPATH, tree_cpu_seconds, tree_pids  # noqa: E402

from kemi_core.sip import SipMsg, StreamBuffer  # noqa: E402
from kemi_core.testing import kamailio_available  # noqa: E402
from kemi_tls.testing import Pki, make_pki  # noqa: E402
from kemi_websocket.testing import WebrtcServer
from kemi_websocket.webrtc_cfg import KAMAILIO_MODULES  # noqa: E402

CONCURRENCY = 8
CALL_LOOPS = 8
#: how many times a server that died during a step is started again before the run gives up
MAX_RESTARTS = 3
_ids = itertools.count(1)


class Conn:
    """One SIP connection of the load client: over TLS, or plain TCP (no context)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 proto: str) -> None:
        self.reader, self.writer = reader, writer
        self.proto = proto
        self.buffer = StreamBuffer()
        self.queue: list[SipMsg] = []
        host, port = writer.get_extra_info("sockname")[:2]
        self.local = f"{host}:{port}"

    @classmethod
    async def open(cls, port: int, ctx: ssl.SSLContext | None) -> Conn:
        if ctx is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            return cls(reader, writer, "tcp")
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                       server_hostname=None)
        return cls(reader, writer, "tls")

    def send(self, text: str) -> None:
        self.writer.write(text.encode())

    async def next(self) -> SipMsg:
        while not self.queue:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("closed by the server")
            self.queue += self.buffer.feed(data)
        return self.queue.pop(0)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass


def request(method: str, ruri: str, conn: Conn, user: str, to: str, call_id: str, cseq: int,
            extra: str = "", body: str = "") -> str:
    """``to`` is a URI, or a whole To value (``<uri>;tag=...``) in a dialog."""
    to = to if to.startswith("<") else f"<{to}>"
    return (f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/{conn.proto.upper()} {conn.local};branch=z9hG4bK"
            f"{call_id}{cseq}{method}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag="
            f"{user}{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:{user}@{conn.local};transport={conn.proto}>\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n{body}")


def reply(msg: SipMsg, code: int, reason: str, conn: Conn, extra: str = "") -> str:
    vias = "".join(f"Via: {v}\r\n" for v in msg.headers("via"))
    rrs = "".join(f"Record-Route: {v}\r\n" for v in msg.headers("record-route"))
    to = msg.header("to") or ""
    if "tag=" not in to:
        to += ";tag=callee"
    return (f"SIP/2.0 {code} {reason}\r\n{vias}{rrs}From: {msg.header('from')}\r\nTo: {to}\r\n"
            f"Call-ID: {msg.call_id}\r\nCSeq: {msg.header('cseq')}\r\n"
            f"Contact: <sip:callee@{conn.local};transport={conn.proto}>\r\n{extra}"
            "Content-Length: 0\r\n\r\n")


# ---- handshakes ----------------------------------------------------------------------------
async def handshake_loop(port: int, ctx: ssl.SSLContext, count: int) -> int:
    done = 0
    for _ in range(count):
        try:  # a refused or reset connection counts as not done; the loop goes on
            conn = await asyncio.wait_for(Conn.open(port, ctx), 10)
            cid = f"hs{next(_ids)}"
            conn.send(request("OPTIONS", "sip:127.0.0.1", conn, "hs", "sip:127.0.0.1", cid, 1))
            msg = await asyncio.wait_for(conn.next(), 10)
            done += msg.status == 200
            await asyncio.wait_for(conn.close(), 10)
        except (OSError, ssl.SSLError, TimeoutError):
            continue
    return done


async def handshakes(port: int, ctx: ssl.SSLContext, total: int) -> int:
    per = total // CONCURRENCY
    counts = await asyncio.gather(*(handshake_loop(port, ctx, per) for _ in range(CONCURRENCY)))
    return sum(counts)


# ---- calls ------------------------------------------------------------------------------------
def holder(root: int, conn: Conn) -> int | None:
    """The process of the server ``root`` (its tree) that holds the other end of ``conn``,
    found by the socket's inode (/proc/net/tcp) among its processes' file descriptors."""
    port = int(conn.local.rsplit(":", 1)[1])
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        if int(cols[2].split(":")[1], 16) == port:  # the server's side: its peer is us
            inodes.add(f"socket:[{cols[9]}]")
    for pid in tree_pids(root):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    return pid
            except OSError:
                continue
    return None



async def register(port: int, ctx: ssl.SSLContext | None, user: str) -> Conn:
    conn = await Conn.open(port, ctx)
    aor = f"sip:{user}@127.0.0.1"
    conn.send(request("REGISTER", "sip:127.0.0.1", conn, user, aor, f"reg-{user}", 1,
                      "Expires: 3600\r\n"))
    msg = await conn.next()
    if msg.status != 200:
        raise RuntimeError(f"REGISTER {user}: {msg.status}")
    return conn


async def callee_loop(conn: Conn) -> None:
    while True:
        msg = await conn.next()
        if not msg.is_request:
            continue
        if msg.method in ("INVITE", "BYE"):  # the ACK needs no answer
            conn.send(reply(msg, 200, "OK", conn))


class Caller:
    def __init__(self, conn: Conn, callee: str) -> None:
        self.conn = conn
        self.target = f"sip:{callee}@127.0.0.1"
        self.waiting: dict[tuple[str, str], asyncio.Future[SipMsg]] = {}

    async def read_loop(self) -> None:
        while True:
            msg = await self.conn.next()
            if msg.is_request or msg.status < 200:
                continue
            fut = self.waiting.pop((msg.call_id, msg.cseq.method), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)

    def expect(self, call_id: str, method: str) -> asyncio.Future[SipMsg]:
        fut: asyncio.Future[SipMsg] = asyncio.get_running_loop().create_future()
        self.waiting[(call_id, method)] = fut
        return fut

    async def call(self) -> bool:
        c = self.conn
        cid = f"call{next(_ids)}"
        target = self.target
        ok = self.expect(cid, "INVITE")
        c.send(request("INVITE", target, c, "caller", target, cid, 1))
        try:
            answer = await asyncio.wait_for(ok, 10)
        except TimeoutError:  # a lost call counts as failed
            return False
        if answer.status != 200:
            return False
        routes = "".join(f"Route: {v}\r\n" for v in reversed(answer.headers("record-route")))
        remote = answer.contacts[0].uri_text if answer.contacts else target
        to = answer.header("to") or target
        c.send(request("ACK", remote, c, "caller", to, cid, 1, routes))
        bye_ok = self.expect(cid, "BYE")
        c.send(request("BYE", remote, c, "caller", to, cid, 2, routes))
        try:
            return (await asyncio.wait_for(bye_ok, 10)).status == 200
        except TimeoutError:
            return False


async def calls(port: int, ctx: ssl.SSLContext | None, total: int,
                placed: Callable[[Conn, Conn], None] | None = None) -> tuple[int, float]:
    """``total`` calls between a caller and a callee registered for this run alone (a
    registration left by an earlier run would fork the INVITE to its closed connection);
    ``placed`` is told of the callee's and the caller's connections once both are up."""
    tag = next(_ids)
    callee = await register(port, ctx, f"callee{tag}")
    caller = Caller(await register(port, ctx, f"caller{tag}"), f"callee{tag}")
    if placed is not None:
        placed(callee, caller.conn)
    tasks = [asyncio.create_task(callee_loop(callee)), asyncio.create_task(caller.read_loop())]
    per = total // CALL_LOOPS

    async def loop() -> int:
        return sum([await caller.call() for _ in range(per)])

    await caller.call()  # warm-up: connections, caches
    t0 = time.monotonic()
    done = sum(await asyncio.gather(*(loop() for _ in range(CALL_LOOPS))))
    wall = time.monotonic() - t0
    for t in tasks:
        t.cancel()
    await callee.close()
    await caller.conn.close()
    return done, wall


# ---- the servers, measured in turns ------------------------------------------------------------
class Measured:
    """One server under test, with what it has done and the CPU it took for it."""

    def __init__(self, kind: str, base: Path, pki: Pki) -> None:
        self.kind = kind
        (base / kind).mkdir()
        self.server = WebrtcServer(kind, base / kind, children=2, kamailio_mpath=KAMAILIO_MPATH,
                                   pki=pki)
        self.ctx = pki.client_context()
        #: metric -> [units done, wall seconds, server CPU seconds]
        self.sums: dict[str, list[float]] = {m: [0, 0.0, 0.0] for m in METRICS}
        #: why the server had to be started again (the step in progress, its crash)
        self.crashes: list[str] = []
        #: the crash lines of the running server already accounted for: one logged between
        #: two steps is the next step's (its connections are refused while Kamailio stops)
        self.seen_crashes: list[str] = []
        #: kemi: the call steps' placement ("one"/"two" workers, "?" unknown) by metric, each
        #: with the step's CPU ms per call
        self.steps: dict[str, list[tuple[str, float]]] = {"tls calls": [], "tcp calls": []}
        self.placement = "?"

    def placed(self, callee: Conn, caller: Conn) -> None:
        """Which workers hold the step's two connections."""
        root = self.server.proc.proc.pid
        pids = {holder(root, callee), holder(root, caller)}
        self.placement = "?" if None in pids else "one" if len(pids) == 1 else "two"

    def measure(self, metric: str, run: Callable[[], Coroutine[Any, Any, int]]) -> None:
        """Run one step and add it up. A server that died during it (Kamailio 5.6.3's TLS
        reader crashes now and then under this load) is started again and the step repeated:
        a dead process's CPU is not counted, and the next step would meet a closed port."""
        for _ in range(MAX_RESTARTS + 1):
            pid = self.server.proc.proc.pid
            crashes = self.seen_crashes
            cpu0, t0 = tree_cpu_seconds(pid), time.monotonic()
            try:
                done = asyncio.run(run())
            except OSError:  # refused, reset: by a server going down?
                if not self.gone(crashes):
                    raise
            else:
                wall, cpu = time.monotonic() - t0, tree_cpu_seconds(pid) - cpu0
                if not self.gone(crashes):
                    acc = self.sums[metric]
                    acc[0] += done
                    acc[1] += wall
                    acc[2] += cpu
                    if metric in self.steps and done:
                        self.steps[metric].append((self.placement, 1000 * cpu / done))
                    return
            self.restart(metric)
        raise RuntimeError(f"{self.kind} died {MAX_RESTARTS + 1} times during {metric}")

    def crash_lines(self) -> list[str]:
        """What the server logged of its processes killed by a signal (Kamailio's main
        process says so, then stops the others: that takes it a moment)."""
        return [line.strip() for line in self.server.proc.log().splitlines()
                if "exited by a signal" in line]

    def gone(self, crashes_before: list[str]) -> bool:
        """Whether the server died (or one of its processes crashed) since ``crashes_before``;
        a server going down is waited for."""
        proc = self.server.proc.proc
        if proc.poll() is None and self.crash_lines() == crashes_before:
            return False
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        return True

    def restart(self, metric: str) -> None:
        why = self.crash_lines()
        self.crashes.append(f"{metric}: {why[-1] if why else 'exited'}")
        print(f"{self.kind} died during {metric} ({self.crashes[-1]}): started again, the step "
              "is repeated", file=sys.stderr)
        self.server.__exit__()
        self.server.__enter__()
        self.seen_crashes = self.crash_lines()
        asyncio.run(handshakes(self.server.ports.tls, self.ctx, CONCURRENCY))  # warm-up

    def round(self, n_handshakes: int, n_calls: int) -> None:
        ports = self.server.ports
        # kemi's workers hold their connections (Kamailio's tcp_main holds them all)
        placed = self.placed if self.kind == "kemi" else None
        self.measure("handshakes", lambda: handshakes(ports.tls, self.ctx, n_handshakes))
        self.measure("tls calls", lambda: _done(calls(ports.tls, self.ctx, n_calls, placed)))
        self.measure("tcp calls", lambda: _done(calls(ports.ws, None, n_calls, placed)))

    def rate(self, metric: str) -> float:
        done, wall, _ = self.sums[metric]
        return done / wall if wall else 0.0

    def cpu_ms(self, metric: str) -> float:
        done, _, cpu = self.sums[metric]
        return 1000 * cpu / done if done else float("nan")


METRICS = ("handshakes", "tls calls", "tcp calls")


async def _done(run: Coroutine[Any, Any, tuple[int, float]]) -> int:
    return (await run)[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--handshakes", type=int, default=1600, help="in all, per server")
    ap.add_argument("--calls", type=int, default=800, help="over TLS and over TCP, per server")
    ap.add_argument("--rounds", type=int, default=4,
                    help="turns the servers take (spreads the machine's other load over both)")
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    kinds = ["kemi"]
    if kamailio_available(*KAMAILIO_MODULES):
        kinds.append("kamailio")
    else:
        print("Kamailio 5.6 with tls/websocket/xhttp/app_lua is not installed: kemi alone")
    with tempfile.TemporaryDirectory(prefix="kemi-bench-tls-") as tmp:
        pki = make_pki(Path(tmp) / "pki")
        servers = [Measured(kind, Path(tmp), pki) for kind in kinds]
        with contextlib.ExitStack() as stack:
            for m in servers:
                stack.enter_context(m.server)
                asyncio.run(handshakes(m.server.ports.tls, m.ctx, CONCURRENCY))  # warm-up
            for _ in range(args.rounds):
                for m in servers:
                    m.round(args.handshakes // args.rounds, args.calls // args.rounds)
    print(f"{'server':10} {'handshakes/s':>13} {'CPU ms/hs':>10} {'TLS calls/s':>12} "
          f"{'CPU ms/call':>12} {'TCP calls/s':>12} {'CPU ms/call':>12}")
    for m in servers:
        print(f"{m.kind:10} {m.rate('handshakes'):13.0f} {m.cpu_ms('handshakes'):10.3f} "
              f"{m.rate('tls calls'):12.0f} {m.cpu_ms('tls calls'):12.3f} "
              f"{m.rate('tcp calls'):12.0f} {m.cpu_ms('tcp calls'):12.3f}   "
              f"({', '.join(f'{int(m.sums[x][0])} {x}' for x in METRICS)})")
        for crash in m.crashes:
            print(f"  {m.kind} died and was started again: {crash}")
        for metric, steps in m.steps.items():
            if steps and m.kind == "kemi":
                print(f"  {metric} per step, caller and callee on one worker or two: "
                      + ", ".join(f"{where} {ms:.3f} ms" for where, ms in steps))
    if len(servers) == 2:
        e, k = servers

        def ratio(metric: str) -> str:
            return f"{e.cpu_ms(metric) / k.cpu_ms(metric):.2f}"

        print(f"kemi / Kamailio, CPU per unit: handshake {ratio('handshakes')}, call over TLS "
              f"{ratio('tls calls')}, call over TCP {ratio('tcp calls')}")
        print("TLS's own share of a call (TLS - TCP, ms CPU): kemi "
              f"{e.cpu_ms('tls calls') - e.cpu_ms('tcp calls'):.3f}, Kamailio "
              f"{k.cpu_ms('tls calls') - k.cpu_ms('tcp calls'):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
