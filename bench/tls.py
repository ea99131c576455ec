"""SIP over TLS, kemi beside Kamailio 5.6 with the same kamailio.cfg and Lua script
(kemi_websocket.webrtc_cfg): TLS handshakes per second with the server's CPU per handshake,
and the server's CPU per call over TLS. Debian's SIPp has no TLS: the load client is here
(asyncio + ssl, uvloop when installed).

* handshakes: CONCURRENCY clients each connect, complete a TLS 1.3 handshake (ECDSA P-256
  certificates made per run), send an OPTIONS, read its 200 and close, HANDSHAKES times in all;
* calls: a callee registered over TLS and a caller over TLS; each call is INVITE / 200 / ACK /
  BYE / 200 through the proxy (Record-Route, tm, registrar lookup), CALLS in all, CALL_LOOPS at
  a time.

Reported: rate (handshakes/s, calls/s) and the server's CPU (all its processes, from /proc)
per unit, and the ratio kemi / Kamailio of the CPU per unit (the goal: <= 1.0).

    .venv/bin/python bench/tls.py [--handshakes N] [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import KAMAILIO_MPATH, tree_cpu_seconds  # noqa: E402

from kemi_core.sip import SipMsg, StreamBuffer  # noqa: E402
from kemi_core.testing import kamailio_available  # noqa: E402
from kemi_tls.testing import make_pki  # noqa: E402
from kemi_websocket.testing import WebrtcServer
from kemi_websocket.webrtc_cfg import KAMAILIO_MODULES  # noqa: E402

CONCURRENCY = 8
CALL_LOOPS = 8
_ids = itertools.count(1)


class Conn:
    """One SIP-over-TLS connection of the load client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buffer = StreamBuffer()
        self.queue: list[SipMsg] = []
        host, port = writer.get_extra_info("sockname")[:2]
        self.local = f"{host}:{port}"

    @classmethod
    async def open(cls, port: int, ctx: ssl.SSLContext) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                       server_hostname=None)
        return cls(reader, writer)

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
    return (f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/TLS {conn.local};branch=z9hG4bK"
            f"{call_id}{cseq}{method}\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag="
            f"{user}{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:{user}@{conn.local};transport=tls>\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n{body}")


def reply(msg: SipMsg, code: int, reason: str, conn: Conn, extra: str = "") -> str:
    vias = "".join(f"Via: {v}\r\n" for v in msg.headers("via"))
    rrs = "".join(f"Record-Route: {v}\r\n" for v in msg.headers("record-route"))
    to = msg.header("to") or ""
    if "tag=" not in to:
        to += ";tag=callee"
    return (f"SIP/2.0 {code} {reason}\r\n{vias}{rrs}From: {msg.header('from')}\r\nTo: {to}\r\n"
            f"Call-ID: {msg.call_id}\r\nCSeq: {msg.header('cseq')}\r\n"
            f"Contact: <sip:callee@{conn.local};transport=tls>\r\n{extra}Content-Length: 0\r\n\r\n")


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
async def register(port: int, ctx: ssl.SSLContext, user: str) -> Conn:
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
    def __init__(self, conn: Conn) -> None:
        self.conn = conn
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
        target = "sip:callee@127.0.0.1"
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


async def calls(port: int, ctx: ssl.SSLContext, total: int) -> tuple[int, float]:
    callee = await register(port, ctx, "callee")
    caller = Caller(await register(port, ctx, "caller"))
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


# ---- one server -------------------------------------------------------------------------------
def run_one(kind: str, base: Path, n_handshakes: int, n_calls: int) -> dict[str, float]:
    pki = make_pki(base / "pki")
    ctx = pki.client_context()
    with WebrtcServer(kind, base / kind, children=2, kamailio_mpath=KAMAILIO_MPATH,
                      pki=pki) as srv:
        pid = srv.proc.proc.pid
        port = srv.ports.tls
        asyncio.run(handshakes(port, ctx, CONCURRENCY))  # warm-up
        cpu0, t0 = tree_cpu_seconds(pid), time.monotonic()
        ok = asyncio.run(handshakes(port, ctx, n_handshakes))
        hs_wall, hs_cpu = time.monotonic() - t0, tree_cpu_seconds(pid) - cpu0
        cpu0 = tree_cpu_seconds(pid)
        done, call_wall = asyncio.run(calls(port, ctx, n_calls))
        call_cpu = tree_cpu_seconds(pid) - cpu0
    return {"handshakes": ok, "hs_per_s": ok / hs_wall, "cpu_ms_per_hs": 1000 * hs_cpu / max(ok, 1),
            "calls": done, "calls_per_s": done / call_wall,
            "cpu_ms_per_call": 1000 * call_cpu / max(done, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--handshakes", type=int, default=1600)
    ap.add_argument("--calls", type=int, default=800)
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
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="kemi-bench-tls-") as tmp:
        for kind in kinds:
            (Path(tmp) / kind).mkdir()
            results[kind] = run_one(kind, Path(tmp), args.handshakes, args.calls)
    print(f"{'server':10} {'handshakes/s':>13} {'CPU ms/hs':>10} {'calls/s':>9} "
          f"{'CPU ms/call':>12}")
    for kind, r in results.items():
        print(f"{kind:10} {r['hs_per_s']:13.0f} {r['cpu_ms_per_hs']:10.3f} "
              f"{r['calls_per_s']:9.0f} {r['cpu_ms_per_call']:12.3f}"
              f"   ({int(r['handshakes'])} handshakes, {int(r['calls'])} calls)")
    if "kamailio" in results:
        k, e = results["kamailio"], results["kemi"]
        print(f"kemi / Kamailio: CPU per handshake {e['cpu_ms_per_hs'] / k['cpu_ms_per_hs']:.2f}, "
              f"CPU per call over TLS {e['cpu_ms_per_call'] / k['cpu_ms_per_call']:.2f}, "
              f"handshakes/s {e['hs_per_s'] / k['hs_per_s']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
