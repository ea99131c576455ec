"""A relayed request leaves from the UDP socket it arrived on, on kemi and on Kamailio 5.6 with
the same config listening on three UDP ports (no socket forced, mhomed off).

What Kamailio 5.6 does, learnt by running it: t_relay() and forward() send a request that came
in over UDP to a UDP destination of the same address family from the socket it came in on,
and name that socket in their Via and in rr's Record-Route (one entry: the request leaves from
where it came in); the branch's CANCEL and the ACK of its 487 leave from it too. A multi-homed
proxy depends on it (the callee's NAT pinhole or ACL, the address it answers to). The first
listen socket, which kemi used for every relayed request before, is right only for what
arrives on it. With several workers each listen port is its own SO_REUSEPORT group, steered
by the branch's rank: a reply to a request relayed from the second or third port still
reaches the worker holding its transaction (checked with children=2).
"""

from __future__ import annotations

import functools
import re
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_core.testing import (
    KemiProcess,
    cfg_preamble,
    free_port,
    kamailio_available,
    request_text,
    side_by_side,
)

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("tm.so", "sl.so", "pv.so", "textops.so", "rr.so", "ctl.so"),
    reason="Kamailio 5.6 is not installed")]

ROUTES = r"""listen=udp:127.0.0.1:{port2}
listen=udp:127.0.0.1:{port3}
request_route {
  if (is_method("CANCEL")) { t_relay(); exit; }
  if ($hdr(X-RR) != "") { record_route(); }
  $du = "sip:127.0.0.1:" + $hdr(X-Callee);
  if ($hdr(X-Tm) != "") { t_relay(); } else { forward(); }
  exit;
}
"""
MODULES = ("tm", "sl", "pv", "textops", "rr")
#: the headers whose values are compared (others by name and place only)
SHOWN = ("via", "record-route")


@pytest.fixture
def phones() -> Iterator[tuple[socket.socket, socket.socket]]:
    """The caller and the callee."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
        s.settimeout(3)
    yield socks[0], socks[1]
    for s in socks:
        s.close()


def receive(sock: socket.socket, start: str, call_id: str,
            within: float = 3.0) -> tuple[str, tuple[str, int]]:
    """The next message of ``call_id`` starting with ``start`` that reaches ``sock`` (within
    ``within`` s)."""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        data, src = sock.recvfrom(65535)
        text = data.decode()
        if text.startswith(start) and f"Call-ID: {call_id}\r\n" in text:
            return text, src
    raise TimeoutError(f"no {start} of {call_id}")


def answer(sock: socket.socket, request: str, src: tuple[str, int], status: str,
           method: str | None = None) -> None:
    """Answer ``request`` with ``status`` (its CSeq method changed to ``method``)."""
    head = request.split("\r\n\r\n")[0].split("\r\n")
    keep = [h for h in head[1:] if h.split(":")[0].lower() in
            ("via", "record-route", "from", "call-id", "cseq")]
    if method is not None:
        keep = [f"CSeq: 1 {method}" if h.startswith("CSeq:") else h for h in keep]
    to = next(h for h in head if h.startswith("To:"))
    sock.sendto((f"SIP/2.0 {status}\r\n" + "\r\n".join(keep) + f"\r\n{to};tag=callee"
                 "\r\nContent-Length: 0\r\n\r\n").encode(), src)


def _port_name(names: dict[str, str], other: str, found: re.Match[str]) -> str:
    """127.0.0.1:port with our port named, another one as ``other`` (when given)."""
    port = found.group(1)
    return "127.0.0.1:" + names.get(port, other or port)


def layout(text: str, names: dict[str, str]) -> list[str]:
    """What a relayed request carries: its request line, then each header, the Via and
    Record-Route values with our ports named (P1..P3), branches and connection numbers left
    out."""
    head = text.split("\r\n\r\n")[0].split("\r\n")
    out = [head[0]]
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.lower() not in SHOWN:
            out.append(name)
            continue
        # (Kamailio's Via of a request that came in over TCP also has ";i=" and the
        # connection's number: kemi's has not, another difference)
        value = re.sub(r";(branch|i)=[^;,\s]+", "", value.strip())
        value = re.sub(r"127\.0\.0\.1:(\d+)", functools.partial(
            _port_name, names, "CALLER" if name.lower() == "via" else ""), value)
        out.append(f"{name}: {value}")
    return out


def relay_on_each_port(ports: list[int], caller: socket.socket, callee: socket.socket,
                       tag: str) -> list[list[str]]:
    """For each of our ports and each way through (forward(), t_relay(), each with and
    without record_route()): where the relayed request came from and what it carried."""
    names = {str(p): f"P{n}" for n, p in enumerate(ports, 1)}
    me = caller.getsockname()[1]
    seen = []
    for port in ports:
        for n, headers in enumerate(({}, {"X-RR": "1"}, {"X-Tm": "1"},
                                     {"X-Tm": "1", "X-RR": "1"})):
            call_id = f"{tag}-{port}-{n}"
            extra = {"X-Callee": str(callee.getsockname()[1]), **headers}
            text = request_text("OPTIONS", call_id=call_id, extra="\r\n".join(
                f"{k}: {v}" for k, v in extra.items()))
            caller.sendto(text.replace("PORT", str(me)).encode(), ("127.0.0.1", port))
            got, src = receive(callee, "OPTIONS", call_id)
            answer(callee, got, src, "200 OK")
            seen.append([f"in at {names[str(port)]}, from {names.get(str(src[1]), src[1])}",
                         *layout(got, names)])
    return seen


def cancel_on_each_port(ports: list[int], caller: socket.socket, callee: socket.socket,
                        tag: str) -> list[list[str]]:
    """An INVITE relayed by t_relay() then cancelled by its caller: where the INVITE, its
    CANCEL and the ACK of its 487 came from and what each carried."""
    names = {str(p): f"P{n}" for n, p in enumerate(ports, 1)}
    me = caller.getsockname()[1]
    seen = []
    for port in ports:
        call_id = f"{tag}-c-{port}"
        branch = f"z9hG4bK{tag}c{port}"
        via = f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch={branch}"
        extra = f"X-Callee: {callee.getsockname()[1]}\r\nX-Tm: 1\r\nX-RR: 1"
        invite = request_text("INVITE", call_id=call_id, via=via, extra=extra)
        caller.sendto(invite.encode(), ("127.0.0.1", port))
        got, src = receive(callee, "INVITE", call_id)
        answer(callee, got, src, "180 Ringing")
        receive(caller, "SIP/2.0 180", call_id)
        cancel = request_text("CANCEL", call_id=call_id, via=via, cseq="1 CANCEL")
        caller.sendto(cancel.encode(), ("127.0.0.1", port))
        got_cancel, csrc = receive(callee, "CANCEL", call_id)
        answer(callee, got_cancel, csrc, "200 OK")
        answer(callee, got, src, "487 Request Terminated")
        got_ack, asrc = receive(callee, "ACK", call_id)
        seen.append([f"in at {names[str(port)]}: INVITE from {names.get(str(src[1]), src[1])}"
                     f", CANCEL from {names.get(str(csrc[1]), csrc[1])}, ACK from "
                     f"{names.get(str(asrc[1]), asrc[1])}", *layout(got, names),
                     *layout(got_cancel, names), *layout(got_ack, names)])
    return seen


def our_ports(work: Path) -> list[int]:
    cfg = (work / "kamailio.cfg").read_text()
    return [int(p) for p in re.findall(r"^listen=udp:127\.0\.0\.1:(\d+)", cfg, re.M)]


def test_requests_leave_from_the_socket_they_came_in_on_as_kamailio(
        tmp_path: Path, phones: tuple[socket.socket, socket.socket]) -> None:
    caller, callee = phones
    seen = {}
    with side_by_side(cfg_preamble(*MODULES) + ROUTES, tmp_path):
        for who in ("kamailio", "kemi"):
            ports = our_ports(tmp_path / who)
            seen[who] = (relay_on_each_port(ports, caller, callee, who)
                         + cancel_on_each_port(ports, caller, callee, who))
    theirs = seen["kamailio"]
    # what Kamailio does, as the module docstring says
    assert [case[0] for case in theirs[:12]] == [
        f"in at P{n}, from P{n}" for n in (1, 2, 3) for _ in range(4)]
    assert "Via: SIP/2.0/UDP 127.0.0.1:P2" in theirs[5]
    assert "Record-Route: <sip:127.0.0.1:P3;lr;ftag=1>" in theirs[9]
    assert theirs[13][0] == "in at P2: INVITE from P2, CANCEL from P2, ACK from P2"
    assert seen["kemi"] == theirs


def worker_cfg(tmp_path: Path, ports: list[int]) -> Path:
    """ROUTES on kemi with two workers."""
    cfg = (cfg_preamble(*MODULES) + ROUTES).replace("children=1", "children=2")
    for name, port in zip(("{port}", "{port2}", "{port3}"), ports, strict=True):
        cfg = cfg.replace(name, str(port))
    cfg = "\n".join(line for line in cfg.replace('mpath="{mpath}"\n', "").splitlines()
                    if "ctl" not in line) + "\n"
    path = tmp_path / "kamailio.cfg"
    path.write_text(cfg)
    return path


def test_several_workers_relay_from_the_arrival_socket_and_keep_the_replies(
        tmp_path: Path, phones: tuple[socket.socket, socket.socket]) -> None:
    """children=2: INVITEs arriving on each of three ports leave from it (Via, Record-Route
    and source port), and the callee's 180 and 200, sent to that port, reach the worker
    holding the transaction: the caller gets them through it (tm counts its 2xx; a reply
    handled by another worker would be forwarded statelessly, the transaction left waiting)."""
    caller, callee = phones
    ports = [free_port(), free_port(), free_port()]
    names = {str(p): f"P{n}" for n, p in enumerate(ports, 1)}
    calls = 0
    with KemiProcess(worker_cfg(tmp_path, ports), tmp_path) as srv:
        for n in range(12):  # new callers: the SO_REUSEPORT hash spreads them over workers
            port = ports[n % 3]
            caller.close()
            caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            caller.bind(("127.0.0.1", 0))
            me = caller.getsockname()[1]
            call_id = f"w-{n}"
            extra = f"X-Callee: {callee.getsockname()[1]}\r\nX-Tm: 1\r\nX-RR: 1"
            invite = request_text("INVITE", call_id=call_id, extra=extra)
            caller.sendto(invite.replace("PORT", str(me)).encode(), ("127.0.0.1", port))
            got, src = receive(callee, "INVITE", call_id)
            assert src[1] == port, srv.log()[-2000:]
            p = names[str(port)]
            assert layout(got, names)[1:3] == [
                f"Record-Route: <sip:127.0.0.1:{p};lr;ftag=1>",
                f"Via: SIP/2.0/UDP 127.0.0.1:{p}"], got
            answer(callee, got, src, "180 Ringing")
            receive(caller, "SIP/2.0 180", call_id)
            answer(callee, got, src, "200 OK")
            receive(caller, "SIP/2.0 200", call_id)
            calls += 1
        caller.close()
        stats = srv.wait_tm_settled(calls)
    assert stats["2xx"] == calls and stats["created"] == calls


#: three UDP listens and two TCP ones (on the second and third port numbers)
TCP_ROUTES = ROUTES.replace("request_route {", """listen=tcp:127.0.0.1:{port2}
listen=tcp:127.0.0.1:{port3}
request_route {""", 1)


def stream_request(server: socket.socket, peers: list[socket.socket], call_id: str) -> str:
    """The request of ``call_id`` that comes on a connection to ``server`` (a new one, or
    one of ``peers``, which the server may reuse), within 3 s."""
    deadline = time.monotonic() + 3.0
    while (left := deadline - time.monotonic()) > 0:
        for ready in select.select([server, *peers], [], [], left)[0]:
            if ready is server:
                peers.append(server.accept()[0])
                continue
            data = ready.recv(65535)
            if not data:
                peers.remove(ready)
                ready.close()
            elif f"Call-ID: {call_id}\r\n".encode() in data:
                return data.decode()
    raise TimeoutError(f"no request of {call_id} over TCP")


def across_transports(ports: list[int], caller: socket.socket, tag: str) -> list[list[str]]:
    """Requests relayed by t_relay() (forward() for the last) over another transport than
    they came in on, or over TCP from another TCP socket than the default: what our Via and
    Record-Route name, and the UDP port a request came from."""
    names = {str(p): f"P{n}" for n, p in enumerate(ports, 1)}
    udp_callee = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp_callee.bind(("127.0.0.1", 0))
    tcp_callee = socket.create_server(("127.0.0.1", 0))
    tcp_callee.settimeout(3)
    cases = (("udp", ports[0], "tcp", "X-Tm"), ("udp", ports[1], "tcp", "X-Tm"),
             ("tcp", ports[1], "udp", "X-Tm"), ("tcp", ports[1], "tcp", "X-Tm"),
             ("tcp", ports[2], "tcp", "X-Tm"), ("udp", ports[1], "tcp", "X-Stateless"))
    seen = []
    peers: list[socket.socket] = []
    try:
        for n, (inp, port, out, how) in enumerate(cases):
            call_id = f"{tag}-x-{n}"
            if out == "tcp":
                callee = f"{tcp_callee.getsockname()[1]};transport=tcp"
            else:
                callee = str(udp_callee.getsockname()[1])
            extra = f"X-Callee: {callee}\r\nX-RR: 1\r\n{how}: 1"
            if inp == "udp":
                text = request_text("OPTIONS", call_id=call_id, extra=extra)
                caller.sendto(text.replace("PORT", str(caller.getsockname()[1])).encode(),
                              ("127.0.0.1", port))
                conn = None
            else:
                conn = socket.create_connection(("127.0.0.1", port), timeout=3)
                text = request_text("OPTIONS", call_id=call_id, extra=extra).replace(
                    "SIP/2.0/UDP 127.0.0.1:PORT", f"SIP/2.0/TCP 127.0.0.1:{conn.getsockname()[1]}")
                conn.sendall(text.encode())
            if out == "tcp":
                got, src = stream_request(tcp_callee, peers, call_id), ("127.0.0.1", 0)
            else:
                got, src = receive(udp_callee, "OPTIONS", call_id)
                answer(udp_callee, got, src, "200 OK")
            if conn is not None:
                conn.close()
            where = f" from {names.get(str(src[1]), src[1])}" if out == "udp" else ""
            seen.append([f"{how} in {inp} at {names[str(port)]}, out {out}{where}",
                         *[line for line in layout(got, names) if line.startswith(
                             ("Via", "Record-Route"))][:-1]])  # the caller's Via left out
    finally:
        for each in (udp_callee, tcp_callee, *peers):
            each.close()
    return seen


def test_the_socket_of_another_transport_is_its_default_one_as_kamailio(
        tmp_path: Path, phones: tuple[socket.socket, socket.socket]) -> None:
    """A request relayed over another transport than it came in on, or over TCP, leaves from
    the transport's default socket (of the listens of the family, the first not on the
    loopback, the last when all are), whichever socket it came in on; rr's Record-Route
    then has two entries when that is not the socket it came in on (enable_double_rr)."""
    caller, _ = phones
    seen = {}
    with side_by_side(cfg_preamble(*MODULES) + TCP_ROUTES, tmp_path):
        for who in ("kamailio", "kemi"):
            seen[who] = across_transports(our_ports(tmp_path / who), caller, who)
    theirs = seen["kamailio"]
    assert theirs[1] == ["X-Tm in udp at P2, out tcp",
                         "Record-Route: <sip:127.0.0.1:P3;transport=tcp;r2=on;lr;ftag=1>",
                         "Record-Route: <sip:127.0.0.1:P2;r2=on;lr;ftag=1>",
                         "Via: SIP/2.0/TCP 127.0.0.1:P3"]
    assert theirs[2][0] == "X-Tm in tcp at P2, out udp from P3"
    assert seen["kemi"] == theirs


def test_mhomed_sends_from_the_listen_of_the_kernels_source_address_as_kamailio(
        tmp_path: Path, phones: tuple[socket.socket, socket.socket]) -> None:
    """mhomed=1: a request relayed over UDP leaves from the first UDP listen with the address
    the kernel sends from to the destination (here 127.0.0.1: the first port), whichever it
    came in on; rr then puts two entries on what came in on another port."""
    caller, callee = phones
    cfg = cfg_preamble(*MODULES).replace("children=1", "children=1\nmhomed=1") + ROUTES
    seen = {}
    with side_by_side(cfg, tmp_path):
        for who in ("kamailio", "kemi"):
            seen[who] = relay_on_each_port(our_ports(tmp_path / who), caller, callee, who)
    theirs = seen["kamailio"]
    assert [case[0] for case in theirs] == [
        f"in at P{n}, from P1" for n in (1, 2, 3) for _ in range(4)]
    assert "Record-Route: <sip:127.0.0.1:P1;r2=on;lr;ftag=1>" in theirs[9]
    assert seen["kemi"] == theirs
