"""The socket of what the server sends by itself, on kemi and on Kamailio 5.6 with the same
Lua script listening on three UDP ports (no mhomed).

What Kamailio 5.6 does, learnt by running it: a request tm sends itself from a route
(KSR.tm.t_uac_send, KSR.tm.t_replicate) leaves from the UDP socket the request being routed
came in on, its Via naming it, as a relayed one does; t_uac_send's ``socket``, when given, is
where it leaves from. The tm.t_uac_start RPC, with no request in hand, sends from the default
socket (the first listen not on the loopback, the last when all are, as here) or the socket
it is given. A reply forwarded statelessly (forward() of the request, no transaction) leaves
from the socket the reply came in on, whichever socket the Via it was sent to named. kemi
sent all of them from the first listen (the RPC from a socket of its own, on a port of its
own).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, request_text, side_by_side
from kemi_core.testing.kamailio import kamcmd

from .test_arrival_socket_vs_kamailio import answer, our_ports, receive

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("tm.so", "sl.so", "pv.so", "app_lua.so", "ctl.so"),
    reason="Kamailio 5.6 is not installed")]

CFG = cfg_preamble("tm", "sl", "pv", "app_lua") + """listen=udp:127.0.0.1:{port2}
listen=udp:127.0.0.1:{port3}
modparam("app_lua", "load", "{dir}/route.lua")
cfgengine "lua"
"""
#: X-How says what the route does with the request: t_uac_send (to X-Callee, from X-Socket
#: when given), t_replicate, or (none) forward() to X-Callee
ROUTE = r"""
function ksr_request_route()
  local callee = KSR.pv.get("$hdr(X-Callee)")
  local how = KSR.pv.get("$hdr(X-How)")
  if how == "uac" then
    KSR.tm.t_uac_send("OPTIONS", "sip:callee@127.0.0.1:" .. callee, "",
      KSR.pv.get("$hdr(X-Socket)") or "",
      "From: <sip:proxy@127.0.0.1>;tag=uac\r\nTo: <sip:callee@127.0.0.1>\r\n" ..
      "Call-ID: " .. KSR.pv.get("$ci") .. "\r\nCSeq: 1 OPTIONS\r\n", "")
    KSR.sl.sl_send_reply(200, "Sent")
  elseif how == "replicate" then
    KSR.tm.t_replicate("sip:127.0.0.1:" .. callee)
  else
    KSR.setdsturi("sip:127.0.0.1:" .. callee)
    KSR.forward()
  end
  return 1
end
"""


@pytest.fixture
def ends() -> Iterator[tuple[socket.socket, socket.socket]]:
    """The phone that sends to the server and the one the server sends to."""
    pair = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    for s in pair:
        s.bind(("127.0.0.1", 0))
    yield pair
    for s in pair:
        s.close()


def on_both(tmp_path: Path, run: Callable[[list[int], str], list[str]]) -> dict[str, list[str]]:
    """``run(ports, who)`` on Kamailio, then on kemi, both running the same script."""
    with side_by_side(CFG, tmp_path, files={"route.lua": ROUTE}):
        return {who: run(our_ports(tmp_path / who), who) for who in ("kamailio", "kemi")}


def through(phone: socket.socket, callee: socket.socket, port: int, call_id: str,
            extra: str) -> tuple[str, tuple[str, int]]:
    """An OPTIONS from ``phone`` to our ``port`` with the headers ``extra`` and X-Callee: the
    request the server sends ``callee`` for it, and where from."""
    text = request_text("OPTIONS", call_id=call_id,
                        extra=f"{extra}X-Callee: {callee.getsockname()[1]}")
    phone.sendto(text.replace("PORT", str(phone.getsockname()[1])).encode(), ("127.0.0.1", port))
    return receive(callee, "OPTIONS", call_id)


def our_via(text: str, names: dict[str, str]) -> str:
    """The top Via of ``text``, its branch left out, our ports named P1..P3."""
    via = re.search(r"^Via: ([^\r\n]*)", text, re.M).group(1)  # type: ignore[union-attr]
    via = re.sub(r";branch=[^;,\s]+", "", via)
    return re.sub(r"127\.0\.0\.1:(\d+)", lambda m: "127.0.0.1:" + names.get(m.group(1),
                                                                           m.group(1)), via)


def sent_by_tm(ports: list[int], phone: socket.socket, callee: socket.socket,
               tag: str) -> list[str]:
    """For t_uac_send and t_replicate on each port (and t_uac_send with socket P2 in at P1):
    the port the request reached the callee from and the Via it carried."""
    names = {str(p): f"P{n}" for n, p in enumerate(ports, 1)}
    cases = [(how, port, "") for how in ("uac", "replicate") for port in ports]
    cases.append(("uac", ports[0], f"udp:127.0.0.1:{ports[1]}"))
    seen = []
    for n, (how, port, sock) in enumerate(cases):
        extra = f"X-How: {how}\r\n" + (f"X-Socket: {sock}\r\n" if sock else "")
        got, src = through(phone, callee, port, f"{tag}-tm-{n}", extra)
        answer(callee, got, src, "200 OK")
        socket_said = f" socket P{ports.index(int(sock.rsplit(':', 1)[1])) + 1}" if sock else ""
        seen.append(f"{how}{socket_said} in at {names[str(port)]}: from "
                    f"{names.get(str(src[1]), src[1])}, Via {our_via(got, names)}")
    return seen


def test_requests_tm_sends_from_a_route_leave_from_the_arrival_socket_as_kamailio(
        tmp_path: Path, ends: tuple[socket.socket, socket.socket]) -> None:
    seen = on_both(tmp_path, lambda ports, who: sent_by_tm(ports, *ends, who))
    theirs = seen["kamailio"]
    assert theirs[:6] == [f"{how} in at P{n}: from P{n}, Via SIP/2.0/UDP 127.0.0.1:P{n}"
                          for how in ("uac", "replicate") for n in (1, 2, 3)]
    assert theirs[6] == "uac socket P2 in at P1: from P2, Via SIP/2.0/UDP 127.0.0.1:P2"
    assert seen["kemi"] == theirs


def forwarded_replies(ports: list[int], phone: socket.socket, callee: socket.socket,
                      tag: str) -> list[str]:
    """A request forward()ed from each port; the callee sends its 200 to each of our ports in
    turn (the one the Via names, then the others): the port the phone gets it from."""
    names = {str(p): f"P{n}" for n, p in enumerate(ports, 1)}
    seen = []
    for port in ports:
        for back in ports:
            call_id = f"{tag}-fwd-{port}-{back}"
            got, src = through(phone, callee, port, call_id, "")
            answer(callee, got, ("127.0.0.1", back), "200 OK")
            _, came = receive(phone, "SIP/2.0 200", call_id)
            seen.append(f"in at {names[str(port)]}, out from {names.get(str(src[1]), src[1])}, "
                        f"reply to {names[str(back)]}: reaches the phone from "
                        f"{names.get(str(came[1]), came[1])}")
    return seen


def test_a_reply_forwarded_statelessly_leaves_from_the_socket_it_came_in_on_as_kamailio(
        tmp_path: Path, ends: tuple[socket.socket, socket.socket]) -> None:
    seen = on_both(tmp_path, lambda ports, who: forwarded_replies(ports, *ends, who))
    theirs = seen["kamailio"]
    assert theirs == [f"in at P{n}, out from P{n}, reply to P{b}: reaches the phone from P{b}"
                      for n in (1, 2, 3) for b in (1, 2, 3)]
    assert seen["kemi"] == theirs


def rpc_requests(ports: list[int], send_rpc: Callable[..., object], callee: socket.socket,
                 tag: str) -> list[str]:
    """tm.t_uac_start without a socket, then with socket P2: the port each request reached
    the callee from, its Via, and whether it came again after the callee's 200 (it must not:
    the reply reached the transaction, in the main process for kemi)."""
    names = {str(p): f"P{n}" for n, p in enumerate(ports, 1)}
    seen = []
    for n, sock in enumerate((".", f"udp:127.0.0.1:{ports[1]}")):
        call_id = f"{tag}-rpc-{n}"
        headers = (f"From: <sip:proxy@127.0.0.1>;tag=rpc\r\nTo: <sip:callee@127.0.0.1>\r\n"
                   f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Type: text/plain\r\n")
        send_rpc("tm.t_uac_start", "OPTIONS", f"sip:callee@127.0.0.1:{callee.getsockname()[1]}",
                 ".", sock, headers)
        got, src = receive(callee, "OPTIONS", call_id)
        answer(callee, got, src, "200 OK")
        try:  # T1 is 0.5 s: a retransmission would come within 1.2 s
            receive(callee, "OPTIONS", call_id, 1.2)
            again = "sent again"
        except TimeoutError:
            again = "not sent again"
        said = "no socket" if sock == "." else "socket P2"
        seen.append(f"{said}: from {names.get(str(src[1]), src[1])}, Via {our_via(got, names)}, "
                    f"{again}")
    return seen


def test_the_rpc_t_uac_start_sends_from_the_default_or_given_socket_as_kamailio(
        tmp_path: Path, ends: tuple[socket.socket, socket.socket]) -> None:
    _, callee = ends
    seen = {}
    with side_by_side(CFG, tmp_path, files={"route.lua": ROUTE}) as pair:
        ctl = f"unix:{tmp_path / 'kamailio' / 'ctl'}"
        seen["kamailio"] = rpc_requests(our_ports(tmp_path / "kamailio"),
                                        lambda *args: kamcmd(ctl, *args), callee, "kamailio")
        seen["kemi"] = rpc_requests(our_ports(tmp_path / "kemi"), pair.kemi.rpc, callee, "kemi")
    assert seen["kamailio"] == [
        "no socket: from P3, Via SIP/2.0/UDP 127.0.0.1:P3, not sent again",
        "socket P2: from P2, Via SIP/2.0/UDP 127.0.0.1:P2, not sent again"]
    assert seen["kemi"] == seen["kamailio"]
