"""In-process authenticated call: bench/auth.py's cfg, Lua script and subscriber table through the
code one kemi worker runs (``Dispatcher.on_data``), no sockets, message kind by message kind.

Each call is SIPp's auth_invite_uac.xml against rr_uas.xml, as bench/auth.py runs them: INVITE
(-> 407), its ACK, the INVITE with Proxy-Authorization (-> 100, relayed to the UAS), the UAS's
180 and 200 (relayed), the ACK and the BYE along the Record-Route, the BYE's 200 (relayed).
The clock is virtual, moved 1/rate s per call, so tm's timers fire as at that rate.

- default: CPU per call (process_time, best of ``--rounds``);
- ``--opcodes``: Python bytecodes per message kind (a tracer on the worker's thread; slow),
  the figure that tells which message still runs Python and how much;
- ``--callgrind``: instructions per call (valgrind, N and 2N calls, the difference / N).

    python bench/auth_callpath.py [--calls 5000] [--opcodes | --callgrind] [--rate 150]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import auth as auth_bench  # noqa: E402
from callpath import _KEEP_RR, _RECORD_ROUTE, callgrind_total, uas_reply  # noqa: E402

UAC_PORT, UAS_PORT, PORT = 5061, 5090, 5060
SDP = (b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n"
       b"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
KINDS = ("INVITE", "407's ACK", "INVITE with credentials", "180", "200 (INVITE)", "ACK",
         "BYE", "200 (BYE)")
_NONCE = re.compile(rb'nonce="([^"]+)"')
_TO_TAG = re.compile(rb"^To:.*;tag=([^;\r]+)", re.MULTILINE)


class Wire:
    """The worker's transport on paper: keeps the last datagram each side got."""

    def __init__(self) -> None:
        self.to_uas: list[bytes] = []
        self.to_uac: list[bytes] = []

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool:
        (self.to_uas if port == UAS_PORT else self.to_uac).append(data)
        return True

    def local_address(self, proto: str) -> tuple[str, int]:
        return ("127.0.0.1", PORT)


def request(method: str, n: int, cseq: int, branch: str, *, to_tag: bytes = b"",
            ruri: str = "", route: bytes = b"", extra: str = "", body: bytes = b"") -> bytes:
    """A request as SIPp's auth_invite_uac.xml sends it."""
    uri = ruri or f"sip:bob@127.0.0.1:{PORT}"
    head = (f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{UAC_PORT};branch=z9hG4bK-{branch};rport\r\n"
            f"From: <sip:{auth_bench.USER}@127.0.0.1:{PORT}>;tag={n}SIPpTag00{n}\r\n"
            f"To: <sip:bob@127.0.0.1:{PORT}>").encode()
    if to_tag:
        head += b";tag=" + to_tag
    head += f"\r\nCall-ID: {n}-4242@127.0.0.1\r\nCSeq: {cseq} {method}\r\n".encode()
    if route:
        head += b"Route: " + route + b"\r\n"
    if method == "INVITE":
        head += f"Contact: <sip:{auth_bench.USER}@127.0.0.1:{UAC_PORT}>\r\n".encode()
    head += extra.encode() + b"Max-Forwards: 70\r\n"
    if body:
        head += b"Content-Type: application/sdp\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def credentials(challenge: bytes, uri: str) -> str:
    """The Proxy-Authorization answering a 407 (MD5; qop=auth when the challenge offers it)."""
    found = _NONCE.search(challenge)
    assert found is not None, challenge
    nonce, realm = found.group(1).decode(), "127.0.0.1"
    ha1 = hashlib.md5(f"{auth_bench.USER}:{realm}:{auth_bench.PASSWORD}".encode()).hexdigest()
    ha2 = hashlib.md5(f"INVITE:{uri}".encode()).hexdigest()
    head = f'Proxy-Authorization: Digest username="{auth_bench.USER}",realm="{realm}",' \
           f'uri="{uri}",nonce="{nonce}",algorithm=MD5'
    if b"qop=" in challenge:
        resp = hashlib.md5(f"{ha1}:{nonce}:00000001:c1:auth:{ha2}".encode()).hexdigest()
        return head + f',response="{resp}",qop=auth,nc=00000001,cnonce="c1"\r\n'
    resp = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
    return head + f',response="{resp}"\r\n'


class Harness:
    """One worker's core and dispatcher on bench/auth.py's cfg, driven call by call."""

    def __init__(self, work: Path, rate: int) -> None:
        from kemi_core.runtime.builder import build, load_config
        from kemi_core.runtime.clock import VirtualClock
        from kemi_core.runtime.context import RecvInfo
        from kemi_core.runtime.dispatch import Dispatcher
        from kemi_core.runtime.worker import limits_of, tune_gc

        db = work / "auth.db"
        auth_bench.make_db(db)
        script = work / "auth.lua"
        script.write_text(auth_bench.LUA.replace("{uas_port}", str(UAS_PORT)))
        cfg = work / "auth.cfg"
        cfg.write_text(auth_bench.CFG.format(children=1, port=PORT, mpath="", db=db,
                                             script=script))
        self.clock = VirtualClock()
        built = build(load_config(cfg), clock=self.clock)
        core = built.core
        self.wire = Wire()
        core.attach_transport(self.wire)
        core.worker_rank = 1
        built.loader.child_init_all(1)
        core.engine = built.engine_spec.factory(core)
        core.engine.load()
        self.dispatcher = Dispatcher(core, limits_of(built))
        core.dispatcher = self.dispatcher  # type: ignore[attr-defined]
        self.from_uac = RecvInfo("udp", "127.0.0.1", UAC_PORT, "127.0.0.1", PORT)
        self.from_uas = RecvInfo("udp", "127.0.0.1", UAS_PORT, "127.0.0.1", PORT)
        self.step = 1.0 / rate
        self.n = 0
        tune_gc()

    def call(self, each: Callable[[str, Callable[[], None]], None] | None = None) -> None:
        """One call; ``each(kind, deliver)`` wraps each delivery (the --opcodes tracer)."""
        self.n += 1
        n, wire, on_data = self.n, self.wire, self.dispatcher.on_data
        uac, uas = self.from_uac, self.from_uas

        def go(kind: str, data: bytes, rcv: Any) -> None:
            if each is None:
                on_data(data, rcv)
            else:
                each(kind, lambda: on_data(data, rcv))

        wire.to_uas.clear()
        wire.to_uac.clear()
        go("INVITE", request("INVITE", n, 1, f"{n}-1"), uac)
        challenge = wire.to_uac[-1]
        assert challenge.startswith(b"SIP/2.0 407"), challenge[:40]
        tag = _TO_TAG.search(challenge)
        assert tag is not None
        go("407's ACK", request("ACK", n, 1, f"{n}-1", to_tag=tag.group(1)), uac)
        auth = credentials(challenge, f"sip:bob@127.0.0.1:{PORT}")
        go("INVITE with credentials", request("INVITE", n, 2, f"{n}-2", extra=auth, body=SDP),
           uac)
        invite = wire.to_uas[-1]
        go("180", uas_reply(invite, b"180 Ringing", True, keep=_KEEP_RR), uas)
        go("200 (INVITE)", uas_reply(invite, b"200 OK", True, SDP, _KEEP_RR), uas)
        rr = _RECORD_ROUTE.search(invite)
        assert rr is not None
        ruri, route = f"sip:127.0.0.1:{UAS_PORT}", rr.group(1)
        go("ACK", request("ACK", n, 2, f"{n}-3", to_tag=b"uas42", ruri=ruri, route=route), uac)
        go("BYE", request("BYE", n, 3, f"{n}-4", to_tag=b"uas42", ruri=ruri, route=route), uac)
        go("200 (BYE)", uas_reply(wire.to_uas[-1], b"200 OK", False, keep=_KEEP_RR), uas)
        # to the UAC: 407, 100, 180, 200, 200; to the UAS: INVITE, ACK, BYE
        if len(wire.to_uac) != 5 or len(wire.to_uas) != 3:
            raise SystemExit(f"call {n}: {len(wire.to_uac)} messages to the UAC, "
                             f"{len(wire.to_uas)} to the UAS (expected 5 and 3)")
        self.clock.advance(self.step)


def cpu(calls: int, rounds: int, rate: int, warmup: int) -> dict:
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="kemi-auth-callpath-") as tmp:
        h = Harness(Path(tmp), rate)
        for _ in range(warmup):
            h.call()
        best = float("inf")
        for _ in range(rounds):
            t0 = time.process_time()
            for _ in range(calls):
                h.call()
            best = min(best, time.process_time() - t0)
        h.clock.advance(60)
    return {"us_per_call": round(best / calls * 1e6, 1)}


def opcodes(calls: int, rate: int, warmup: int, top: int) -> dict:
    """Bytecodes per message kind (and per function for the ``top`` heaviest)."""
    logging.disable(logging.INFO)
    per_kind: collections.Counter[str] = collections.Counter()
    per_func: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    current = [""]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            per_kind[current[0]] += 1
            code = frame.f_code
            per_func[current[0]][f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}"] += 1
        return tracer

    def each(kind: str, deliver: Callable[[], None]) -> None:
        current[0] = kind
        sys.settrace(tracer)
        try:
            deliver()
        finally:
            sys.settrace(None)

    with tempfile.TemporaryDirectory(prefix="kemi-auth-callpath-") as tmp:
        h = Harness(Path(tmp), rate)
        for _ in range(warmup):
            h.call()
        for _ in range(calls):
            h.call(each)
        h.clock.advance(60)
    out: dict[str, Any] = {k: round(per_kind[k] / calls, 1) for k in KINDS}
    out["call"] = round(sum(per_kind.values()) / calls, 1)
    out["functions"] = {k: {f: round(c / calls, 1) for f, c in per_func[k].most_common(top)}
                        for k in KINDS}
    return out


def callgrind(calls: int, rate: int, warmup: int) -> dict:
    totals = []
    env = dict(os.environ, PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory(prefix="kemi-auth-callgrind-") as tmp:
        for n in (calls, 2 * calls):
            out = Path(tmp) / f"callgrind.{n}"
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                            sys.executable, __file__, "--calls", str(n), "--rounds", "1",
                            "--rate", str(rate), "--warmup", str(warmup)],
                           check=True, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            totals.append(callgrind_total(out))
    return {"instructions_per_call": round((totals[1] - totals[0]) / calls)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=int, default=150, help="calls per second of virtual time")
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--opcodes", action="store_true", help="bytecodes per message kind")
    ap.add_argument("--top", type=int, default=0, help="with --opcodes: the heaviest functions")
    ap.add_argument("--callgrind", action="store_true", help="instructions per call")
    args = ap.parse_args()
    if args.opcodes:
        res = opcodes(args.calls, args.rate, args.warmup, args.top)
    elif args.callgrind:
        res = callgrind(args.calls, args.rate, args.warmup)
    else:
        res = cpu(args.calls, args.rounds, args.rate, args.warmup)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    print(json.dumps({"benchmark": "auth_callpath", "commit": head or None, "calls": args.calls,
                      "rate": args.rate, "pure": os.environ.get("KEMI_SIP_PURE") == "1", **res},
                     indent=1))


if __name__ == "__main__":
    main()
