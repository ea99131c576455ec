"""CPU per datagram of a worker's UDP endpoint alone (not a test; run it by hand).

A server process runs one WorkerEndpoints on the worker's event loop (uvloop when installed;
KEMI_ASYNCIO=1: asyncio's own) whose receiver does what every message costs the transport:
parse, read a header, send a reply from the socket the request came in on. This process sends
OPTIONS in bursts of 10 and waits for the 10 replies; the server's own CPU time (asked over the
socket before and after) divided by the datagrams is the figure. Several source trees (their
.venv each) are alternated round by round, so a change to kemi_core/transport can be compared
with what it replaces on one machine at one time. The last line printed is one JSON object.

    python bench/udp_endpoint.py [--trees DIR,DIR] [--rounds 6] [--datagrams 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: asked instead of a SIP message: the server answers with its CPU seconds so far
CPU_QUERY = b"CPU?"
BURST = 10
WARM_UP = 2000


def options(n: int) -> bytes:
    return (f"OPTIONS sip:b@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKab{n}\r\n"
            f"From: <sip:a@127.0.0.1>;tag=t{n}\r\nTo: <sip:b@127.0.0.1>\r\n"
            f"Call-ID: ab{n}@bench\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


REPLY = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx\r\n"
         b"From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\nCall-ID: x\r\n"
         b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")


def serve(port: int) -> None:
    """The server side: runs until killed."""
    from kemi_core.config.model import ListenAddr
    from kemi_core.runtime.worker import new_event_loop
    from kemi_core.sip import ParseLimits
    from kemi_core.transport.endpoints import WorkerEndpoints

    class Answer:
        def on_message(self, msg: Any, rcv: Any) -> None:
            msg.call_id  # noqa: B018 - a header read, as routing does
            endpoints.send("udp", rcv.src_ip, rcv.src_port, REPLY, (rcv.dst_ip, rcv.dst_port))

        def on_bad_message(self, data: bytes, rcv: Any, error: Any) -> None:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            endpoints.send("udp", rcv.src_ip, rcv.src_port,
                           repr(usage.ru_utime + usage.ru_stime).encode(),
                           (rcv.dst_ip, rcv.dst_port))

    loop = asyncio.new_event_loop() if os.environ.get("KEMI_ASYNCIO") else new_event_loop()
    asyncio.set_event_loop(loop)
    endpoints = WorkerEndpoints(loop, [ListenAddr("udp", "127.0.0.1", port)], Answer(),
                                ParseLimits(), False)
    loop.run_until_complete(endpoints.start())
    print("ready", flush=True)
    loop.run_forever()


def median(values: list[float]) -> float:
    """(bench/statistics.py shadows the standard module of that name here.)"""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def one_round(tree: Path, datagrams: int) -> float:
    """Start the server of ``tree``, load it, return its CPU us per datagram."""
    from kemi_core.testing.process import free_port

    port = free_port()
    server = subprocess.Popen([str(tree / ".venv/bin/python"), __file__, "--serve", str(port)],
                              stdout=subprocess.PIPE, cwd=tree)
    try:
        assert server.stdout is not None
        server.stdout.readline()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            peer.settimeout(5)
            dest = ("127.0.0.1", port)
            msgs = [options(n) for n in range(1000)]

            def cpu() -> float:
                peer.sendto(CPU_QUERY, dest)
                return float(peer.recv(100))

            for n in range(WARM_UP):
                peer.sendto(msgs[n % 1000], dest)
                peer.recv(1000)
            before = cpu()
            for burst in range(datagrams // BURST):
                for k in range(BURST):
                    peer.sendto(msgs[(burst * BURST + k) % 1000], dest)
                for _ in range(BURST):
                    peer.recv(1000)
            return (cpu() - before) / datagrams * 1e6
    finally:
        server.terminate()
        server.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trees", default=str(REPO),
                        help="comma-separated source trees, each with its .venv")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--datagrams", type=int, default=20_000)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.serve:
        serve(opts.serve)
        return 0
    trees = [Path(t).resolve() for t in opts.trees.split(",")]
    figures: dict[str, list[float]] = {str(t): [] for t in trees}
    for r in range(opts.rounds):
        for tree in trees:
            us = one_round(tree, opts.datagrams)
            figures[str(tree)].append(round(us, 2))
            print(f"round {r} {tree}: {us:.2f} us CPU per datagram", flush=True)
    loop = "asyncio" if os.environ.get("KEMI_ASYNCIO") else "worker (uvloop when installed)"
    print(json.dumps({"loop": loop, "load_average_1min": os.getloadavg()[0],
                      "median_us_per_datagram": {t: median(v)
                                                 for t, v in figures.items()},
                      "us_per_datagram": figures}))
    return 0


if __name__ == "__main__":
    # a server runs the kemi_core of the tree it is started in (its cwd), never this one's
    sys.path.insert(0, os.getcwd() if "--serve" in sys.argv else str(REPO))
    raise SystemExit(main())
