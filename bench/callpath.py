"""In-process stateful harness: whole calls through one kemi worker, no sockets, per engine.

The stateful benchmark (bench/stateful.py) measures CPU per call with SIPp on real sockets: the
figure to compare with Kamailio, but noisy on a shared machine. This harness runs the same
kamailio.cfg and scripts (stateful.py's Lua, Python and native routes) through the code a worker
runs (``Dispatcher.on_data``), with a transport that records instead of sending and a
``VirtualClock`` moved 1/rate s per call, so tm's timers fire as they would at that rate. Each
call is SIPp's built-in "uac" against its "uas": INVITE (-> 100, INVITE to the UAS), 180, 200,
ACK, BYE, 200 for the BYE. The UAC's and UAS's messages are built with byte operations.

``--script example`` runs bench/example_call.py's cfg and scripts instead (the call logic of
Kamailio's official example: sanity, nathelper, siputils, rr, tm): the UAS copies the
Record-Route into its replies, the UAC (its Contact a private address) sends the ACK and BYE to
the UAS's Contact along that route, as SIPp's rr_uac.xml and rr_uas.xml do.

Two figures per engine:
- ``us_per_call``: CPU time (process_time) per call, best of ``--rounds``;
- ``--callgrind``: instructions per call counted by valgrind's callgrind, deterministic (hash seed
  fixed): the harness runs twice under callgrind, with N and 2N calls, and the difference / N is
  one call's instructions with start-up and teardown cancelled out. ``--keep DIR`` keeps the
  callgrind files for ``callgrind_annotate`` (where a call's instructions go).

    python bench/callpath.py [--engine lua,python,native] [--calls 20000] [--callgrind]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ENGINES = ("lua", "python", "native")
#: script -> the UAC's Contact host (the example's caller is behind NAT)
SCRIPTS = {"plain": "127.0.0.1", "example": "192.168.1.10"}
UAC_PORT, UAS_PORT = 5061, 5090
SDP = (b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n"
       b"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


class Wire:
    """The worker's transport on paper: keeps what went to the UAS, counts the rest."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.to_uas: list[bytes] = []
        self.to_uac = 0

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool:
        if port == UAS_PORT:
            self.to_uas.append(data)
        else:
            self.to_uac += 1
        return True

    def local_address(self, proto: str) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


def uac_request(method: str, port: int, n: int, cseq: int, branch: str, to_tag: bytes = b"",
                body: bytes = b"", contact_host: str = "127.0.0.1", ruri: str = "",
                route: bytes = b"") -> bytes:
    """A request as SIPp's uac sends it (``ruri`` and ``route``: in dialog, along a
    Record-Route)."""
    head = (f"{method} {ruri or f'sip:service@127.0.0.1:{port}'} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{UAC_PORT};branch=z9hG4bK-{branch}\r\n"
            f"From: sipp <sip:sipp@127.0.0.1:{UAC_PORT}>;tag={n}SIPpTag00{n}\r\n"
            f"To: service <sip:service@127.0.0.1:{port}>").encode()
    if to_tag:
        head += b";tag=" + to_tag
    head += (f"\r\nCall-ID: {n}-4242@127.0.0.1\r\nCSeq: {cseq} {method}\r\n").encode()
    if route:
        head += b"Route: " + route + b"\r\n"
    head += (f"Contact: sip:sipp@{contact_host}:{UAC_PORT}\r\nMax-Forwards: 70\r\n"
             "Subject: Performance Test\r\n").encode()
    if body:
        head += b"Content-Type: application/sdp\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


# the plain script's UAS copies no Record-Route (there is none): its patterns stay as cheap as
# before the example script came, since callgrind counts the harness's instructions too
_KEEP = re.compile(rb"^(?:Via|From|Call-ID|CSeq):.*$", re.MULTILINE)
_KEEP_RR = re.compile(rb"^(?:Via|From|Call-ID|CSeq|Record-Route):.*$", re.MULTILINE)
_TO = re.compile(rb"^To:(.*?)\r$", re.MULTILINE)
_RECORD_ROUTE = re.compile(rb"^Record-Route: *(.*?)\r$", re.MULTILINE)


def uas_reply(request: bytes, status: bytes, with_tag: bool, body: bytes = b"",
              keep: re.Pattern[bytes] = _KEEP) -> bytes:
    """The UAS's reply to a forwarded request: its Vias, From, Call-ID, CSeq (``_KEEP_RR``:
    and Record-Route); To with a tag."""
    head = request[:request.index(b"\r\n\r\n")]
    lines = [b"SIP/2.0 " + status]
    lines += [m.group(0).rstrip(b"\r") for m in keep.finditer(head)]
    to = _TO.search(head)
    assert to is not None
    lines.append(b"To:" + to.group(1) + (b";tag=uas42" if with_tag else b""))
    lines.append(b"Contact: <sip:127.0.0.1:%d>" % UAS_PORT)
    if body:
        lines.append(b"Content-Type: application/sdp")
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class Harness:
    """One worker's core and dispatcher on the cfg of ``engine``, driven call by call."""

    def __init__(self, engine: str, work: Path, rate: int, script: str = "plain") -> None:
        if script == "example":
            from example_call import write_setup
        else:
            from stateful import write_setup

        from kemi_core.runtime.builder import build, load_config
        from kemi_core.runtime.clock import VirtualClock
        from kemi_core.runtime.context import RecvInfo
        from kemi_core.runtime.dispatch import Dispatcher
        from kemi_core.runtime.worker import limits_of, tune_gc

        cfg_path, port, uas_port = write_setup(engine, f"callpath_{engine}", work,
                                               uas_port=UAS_PORT)
        self.clock = VirtualClock()
        built = build(load_config(cfg_path), clock=self.clock)
        core = built.core
        self.wire = Wire(port)
        core.attach_transport(self.wire)
        core.worker_rank = 1
        built.loader.child_init_all(1)
        core.engine = built.engine_spec.factory(core)
        core.engine.load()
        self.dispatcher = Dispatcher(core, limits_of(built))
        core.dispatcher = self.dispatcher  # type: ignore[attr-defined]
        self.core = core
        self.port = port
        self.step = 1.0 / rate
        self.from_uac = RecvInfo("udp", "127.0.0.1", UAC_PORT, "127.0.0.1", port)
        self.from_uas = RecvInfo("udp", "127.0.0.1", UAS_PORT, "127.0.0.1", port)
        self.n = 0
        self.contact_host = SCRIPTS[script]
        self.record_routed = script == "example"
        self.keep = _KEEP_RR if self.record_routed else _KEEP
        tune_gc()  # as Worker.setup: the collector's thresholds of a worker

    def call(self) -> None:
        self.n += 1
        n, port, on_data, wire = self.n, self.port, self.dispatcher.on_data, self.wire
        host = self.contact_host
        wire.to_uas.clear()
        on_data(uac_request("INVITE", port, n, 1, f"{n}-1-0", body=SDP, contact_host=host),
                self.from_uac)
        invite = wire.to_uas[-1]
        on_data(uas_reply(invite, b"180 Ringing", True, keep=self.keep), self.from_uas)
        on_data(uas_reply(invite, b"200 OK", True, SDP, self.keep), self.from_uas)
        rr = _RECORD_ROUTE.search(invite) if self.record_routed else None
        route, ruri = (rr.group(1), f"sip:127.0.0.1:{UAS_PORT}") if rr else (b"", "")
        on_data(uac_request("ACK", port, n, 1, f"{n}-1-5", b"uas42", contact_host=host,
                            ruri=ruri, route=route), self.from_uac)
        on_data(uac_request("BYE", port, n, 2, f"{n}-1-7", b"uas42", contact_host=host,
                            ruri=ruri, route=route), self.from_uac)
        on_data(uas_reply(wire.to_uas[-1], b"200 OK", True, keep=self.keep), self.from_uas)
        self.clock.advance(self.step)

    def check(self, calls: int) -> None:
        """Every call went through: INVITE, ACK, BYE to the UAS; 100, 180, 200, 200 back."""
        if self.wire.to_uac != 4 * calls:
            raise SystemExit(f"{self.wire.to_uac} messages to the UAC for {calls} calls "
                             f"(expected {4 * calls}): the route did not relay every call")


def run(engine: str, calls: int, rounds: int, rate: int, warmup: int,
        script: str = "plain") -> dict[str, Any]:
    logging.disable(logging.INFO)  # as a production server: debug lines are below the level
    with tempfile.TemporaryDirectory(prefix="kemi-callpath-") as tmp:
        h = Harness(engine, Path(tmp), rate, script)
        for _ in range(warmup):
            h.call()
        best = float("inf")
        for _ in range(rounds):
            t0 = time.process_time()
            for _ in range(calls):
                h.call()
            best = min(best, time.process_time() - t0)
        h.check(warmup + calls * rounds)
        h.clock.advance(60)  # every transaction ends
    return {"engine": engine, "us_per_call": round(best / calls * 1e6, 1) if calls else None}


def callgrind_total_or_none(out_file: Path) -> int | None:
    """The instructions a callgrind output file counts in all (None when it has no total: a
    process that did not exit cleanly)."""
    for line in out_file.read_text(errors="replace").splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    return None


def callgrind_total(out_file: Path) -> int:
    total = callgrind_total_or_none(out_file)
    if total is None:
        raise SystemExit(f"no totals in {out_file}")
    return total


def callgrind(engine: str, calls: int, rate: int, warmup: int, keep: Path | None,
              script: str = "plain") -> dict:
    """Instructions per call: (Ir with 2N calls - Ir with N calls) / N, start-up cancelled."""
    totals = []
    out_dir = keep or Path(tempfile.mkdtemp(prefix="kemi-callgrind-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONHASHSEED="0")
    for n in (calls, 2 * calls):
        out = out_dir / f"callgrind.{script}.{engine}.{n}"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, __file__, "--engine", engine, "--calls", str(n),
                        "--rounds", "1", "--rate", str(rate), "--warmup", str(warmup),
                        "--script", script],
                       check=True, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        totals.append(callgrind_total(out))
    return {"engine": engine, "instructions_per_call": round((totals[1] - totals[0]) / calls),
            "files": str(out_dir) if keep else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", default=",".join(ENGINES))
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=int, default=1500, help="calls per second of virtual time")
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--callgrind", action="store_true",
                    help="count instructions per call under valgrind (deterministic)")
    ap.add_argument("--keep", type=Path, help="directory to keep the callgrind files in")
    ap.add_argument("--script", choices=SCRIPTS, default="plain",
                    help="plain: stateful.py's relay; example: example_call.py's (rr, nathelper)")
    args = ap.parse_args()
    engines = [e for e in args.engine.split(",") if e]
    results = {}
    for engine in engines:
        if args.callgrind:
            res = callgrind(engine, args.calls, args.rate, args.warmup, args.keep, args.script)
            print(f"{engine:7} {res['instructions_per_call']:>12,} instructions per call",
                  flush=True)
        else:
            res = run(engine, args.calls, args.rounds, args.rate, args.warmup, args.script)
            print(f"{engine:7} {res['us_per_call']:8} us CPU per call", flush=True)
        results[engine] = res
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    print(json.dumps({"benchmark": "callpath", "script": args.script, "commit": head or None,
                      "calls": args.calls,
                      "warmup": args.warmup, "rate": args.rate, "callgrind": args.callgrind,
                      "engines": results}))


if __name__ == "__main__":
    main()
