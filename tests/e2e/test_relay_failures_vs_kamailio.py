"""t_relay() to a next hop it cannot reach, on kemi and on Kamailio 5.6 with the same config
(native routes, a Lua script and a Python script): what t_relay returns and what the client gets.

What Kamailio 5.6.3 does, learnt by running it:
* a host that does not resolve (``sip:bob@x.invalid``): t_relay fails at once with -478; the
  script's ``sl_reply_error()`` answers "500 I'm terribly sorry, server error occurred (1/SL)"
  statelessly, and once the request route is over the transaction (which stays) answers
  "478 Unresolvable destination (478/TM)" itself (a stateful reply: retransmitted until ACKed);
* ``;transport=tcp`` (or tls, sctp) with no listen socket of that transport: -7 at once, the
  same 500, then "500 I'm terribly sorry, server error occurred (7/TM)";
* a TCP port on this host that refuses the connection: -1 at once (the refusal is known right
  after connect), the same 500, then "477 Unfortunately error on sending to next hop occurred
  (477/TM)";
* a UDP port with nobody behind it: t_relay succeeds (1) and the transaction ends with its
  local 408 after fr_timer.
The Lua and Python scripts put t_relay's value in an X-Rc header of their error reply. In native
routes, ``if (!t_relay()) { sl_reply_error(); }``, sl_reply_error words the error t_relay met:
"478 Unresolvable destination (478/SL)", "500 I'm terribly sorry, server error occurred (7/SL)",
"477 Unfortunately error on sending to next hop occurred (477/SL)" (Kamailio's KEMI engines do
not pass that error on: the 500 (1/SL) above). Retransmissions of a reply are counted once
(Kamailio stops resending a local final at fr_timer, kemi at timer H).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, request_text, side_by_side
from kemi_core.testing.process import free_port
from kemi_core.testing.sidebyside import reduce_reply

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("tm.so", "sl.so", "app_lua.so", "app_python3.so"),
    reason="Kamailio 5.6 is not installed")]

FR_TIMER_MS = 1000

NATIVE = """request_route {
  if (!t_relay()) {
    sl_reply_error();
  }
  exit;
}
"""
LUA = """loadmodule "app_lua.so"
modparam("app_lua", "load", "{dir}/relay.lua")
cfgengine "lua"
"""
LUA_SCRIPT = """
function ksr_request_route()
  local rc = KSR.tm.t_relay()
  if rc < 0 then
    KSR.hdr.append_to_reply("X-Rc: " .. rc .. "\\r\\n")
    KSR.sl.sl_reply_error()
  end
end
"""
PYTHON = """loadmodule "app_python3.so"
modparam("app_python3", "load", "{dir}/relay.py")
cfgengine "python"
"""
PYTHON_SCRIPT = """import KSR


class Router:
    def child_init(self, rank):  # Kamailio 5.6.3's app_python3 needs it
        return 0

    def ksr_request_route(self, msg):
        rc = KSR.tm.t_relay()
        if rc < 0:
            KSR.hdr.append_to_reply("X-Rc: %d\\r\\n" % rc)
            KSR.sl.sl_reply_error()
        return 1

    def ksr_onsend_route(self, msg):  # Kamailio 5.6.3's app_python3 looks it up
        return 1


def mod_init():
    return Router()
"""
ENGINES = {"native": (NATIVE, {}), "lua": (LUA, {"relay.lua": LUA_SCRIPT}),
           "python": (PYTHON, {"relay.py": PYTHON_SCRIPT})}

#: the replies one request got: (status line, its X-Rc header if any)
Replies = list[tuple[str, tuple[tuple[str, str], ...]]]

ERROR_500 = "SIP/2.0 500 I'm terribly sorry, server error occurred (1/SL)"


def config(engine: str, tcp: bool) -> tuple[str, dict[str, str]]:
    head = cfg_preamble("tm", "sl", "pv", "textops")
    if tcp:
        head += "listen=tcp:127.0.0.1:{port}\n"
    head += f'modparam("tm", "fr_timer", {FR_TIMER_MS})\n'
    routes, files = ENGINES[engine]
    return head + routes, files


def closed_port(kind: int) -> int:
    """A port of 127.0.0.1 nobody listens on (free now, not bound after)."""
    return free_port(kind)


def replies(port: int, ruris: list[str]) -> list[Replies]:
    """Send an INVITE to each R-URI (each its own call); every reply each one got (100 Trying
    aside) until fr_timer has passed with a margin: (status line, X-Rc)."""
    got: dict[str, Replies] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        me = str(sock.getsockname()[1])
        for n, ruri in enumerate(ruris):
            text = request_text("INVITE", ruri=ruri, call_id=f"relay-fail-{n}")
            sock.sendto(text.replace("PORT", me).encode(), ("127.0.0.1", port))
            got[f"relay-fail-{n}"] = []
        deadline = time.monotonic() + FR_TIMER_MS / 1000 + 1.5
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(65535)
            except TimeoutError:
                break
            if data.startswith(b"SIP/2.0 100 "):
                continue
            answer = reduce_reply(data, ("call-id", "x-rc"))
            headers = dict(answer.headers)
            seen = got[headers["call-id"]]
            reply = (answer.status, tuple((k, v) for k, v in answer.headers if k == "x-rc"))
            if not seen or seen[-1] != reply:  # a retransmission counted once
                seen.append(reply)
    return [got[f"relay-fail-{n}"] for n in range(len(ruris))]


def error(rc: int, then: str) -> dict[str, Replies]:
    """By engine: the script's stateless error reply (Lua, Python: with t_relay's value), then
    the transaction's."""
    sl_native = {"478": "478 Unresolvable destination (478/SL)",
                 "500": "500 I'm terribly sorry, server error occurred (7/SL)",
                 "477": "477 Unfortunately error on sending to next hop occurred (477/SL)"}
    kemi: Replies = [(ERROR_500, (("x-rc", str(rc)),)), (f"SIP/2.0 {then}", ())]
    native: Replies = [(f"SIP/2.0 {sl_native[then[:3]]}", ()), (f"SIP/2.0 {then}", ())]
    return {"native": native, "lua": kemi, "python": kemi}


UNRESOLVABLE = "478 Unresolvable destination (478/TM)"
NO_SOCKET = "500 I'm terribly sorry, server error occurred (7/TM)"
SEND_FAILED = "477 Unfortunately error on sending to next hop occurred (477/TM)"


@pytest.mark.parametrize("engine", ["native", "lua", "python"])
def test_t_relay_failures_like_kamailio(tmp_path: Path, engine: str) -> None:
    udp_port, tcp_port = closed_port(socket.SOCK_DGRAM), closed_port(socket.SOCK_STREAM)
    timeout: Replies = [("SIP/2.0 408 Request Timeout", ())]
    cases: list[tuple[str, str, dict[str, Replies]]] = [
        ("unresolvable", "sip:bob@nonexistent.invalid", error(-478, UNRESOLVABLE)),
        ("no tls socket", "sip:bob@127.0.0.1:5061;transport=tls", error(-7, NO_SOCKET)),
        ("no sctp socket", "sip:bob@127.0.0.1:5060;transport=sctp", error(-7, NO_SOCKET)),
        ("tcp refused", f"sip:bob@127.0.0.1:{tcp_port};transport=tcp", error(-1, SEND_FAILED)),
        ("udp nobody", f"sip:bob@127.0.0.1:{udp_port}",
         dict.fromkeys(ENGINES, timeout)),
    ]
    cfg, files = config(engine, tcp=True)
    with side_by_side(cfg, tmp_path, files=files) as pair:
        ruris = [ruri for _, ruri, _ in cases]
        theirs = replies(pair.kamailio_port, ruris)
        ours = replies(pair.kemi_port, ruris)
        log = pair.kemi.log()
    assert theirs == [want[engine] for _, _, want in cases], pair.kamailio.log()[-3000:]
    assert ours == theirs, log[-3000:]


def test_t_relay_to_tcp_without_a_tcp_socket_like_kamailio(tmp_path: Path) -> None:
    cfg, files = config("native", tcp=False)
    ruris = ["sip:bob@127.0.0.1:5060;transport=tcp"]
    with side_by_side(cfg, tmp_path, files=files) as pair:
        theirs = replies(pair.kamailio_port, ruris)
        ours = replies(pair.kemi_port, ruris)
        log = pair.kemi.log()
    assert theirs == [error(-7, NO_SOCKET)["native"]]
    assert ours == theirs, log[-3000:]
