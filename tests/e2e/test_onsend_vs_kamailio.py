"""onsend_route on what tm relays, on kemi and on Kamailio 5.6 with the same config (native
routes, a Lua script and a Python script), over real sockets: what the route saw, what each
next hop got and what the caller got.

What Kamailio 5.6.3 does, learnt by running it:
* the route runs once per branch t_relay sends (parallel forking: once for each), on its
  first send only: not for tm's retransmissions, nor for the CANCEL or the ACK (of a negative
  reply) tm makes itself;
* it sees the request as routed, not the branch's copy: $rm, $ru (the request route's, for
  every branch) and the Via as received on top; where it goes in $snd(ip), $snd(port),
  $snd(sproto) ("udp"), $snd(proto) (1), $snd(af) (2) and the branch's bytes in $snd(buf);
* what it adds to the message (append_hf) is not sent;
* drop (native routes): that branch is not sent and runs no branch-failure route; the others
  decide (a 486 from the other one is the final); when every branch was dropped t_relay
  returns -1 and, once the request route is over, the transaction answers "477 Unfortunately
  error on sending to next hop occurred (477/TM)";
* the KEMI engines cannot drop there: KSR.x.drop() (Lua), KSR.set_drop() or any value the
  function returns leave the branch to go (stateless forwards too).
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, side_by_side
from kemi_core.testing.sidebyside import Pair
from kemi_core.testing.wait import WaitTimeout, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("tm.so", "app_lua.so", "app_python3.so"),
    reason="Kamailio 5.6 is not installed")]

NATIVE = r"""request_route {
  if ($rm == "CANCEL" || $rm == "ACK") { t_relay(); exit; }
  $ru = "sip:b@127.0.0.1:" + $(hdr(X-Uas){s.select,0, });
  if ($(hdr(X-Uas){s.select,1, }) != "") {
    append_branch("sip:b@127.0.0.1:" + $(hdr(X-Uas){s.select,1, }));
  }
  t_on_branch_failure("BF");
  t_relay();
  xlog("L_ERR", "RELAY $rc\n");
}
event_route[tm:branch-failure:BF] { xlog("L_ERR", "BRANCH-FAILURE $T_reply_code\n"); }
onsend_route {
  xlog("L_ERR", "ONSEND $rm $snd(ip) $snd(port) $snd(sproto) $snd(proto) $snd(af) $ru $(hdr(Via)[0]{s.select,1, }{s.select,0,;}) $(snd(buf){s.substr,0,6})\n");
  if ($hdr(X-Edit) != "") { append_hf("X-Onsend: 1\r\n"); }
  if ($hdr(X-Drop) == "all" || $hdr(X-Drop) == $snd(port)) { drop; }
}
"""
LUA = """loadmodule "app_lua.so"
modparam("app_lua", "load", "{dir}/onsend.lua")
cfgengine "lua"
"""
LUA_SCRIPT = r"""
function ksr_request_route()
  local rm = KSR.pv.get("$rm")
  if rm == "CANCEL" or rm == "ACK" then
    KSR.tm.t_relay()
    return
  end
  local first, second = string.match(KSR.pv.get("$hdr(X-Uas)"), "^(%d+) ?(%d*)$")
  KSR.pv.sets("$ru", "sip:b@127.0.0.1:" .. first)
  if second ~= "" then
    KSR.corex.append_branch_uri("sip:b@127.0.0.1:" .. second)
  end
  KSR.tm.t_on_branch_failure("ksr_bf")
  KSR.err("RELAY " .. KSR.tm.t_relay() .. "\n")
end

function ksr_bf()
  KSR.err("BRANCH-FAILURE " .. KSR.pv.get("$T_reply_code") .. "\n")
end

function ksr_onsend_route()
  local via = KSR.pv.get("$(hdr(Via)[0])")
  KSR.err("ONSEND " .. KSR.pv.get("$rm") .. " " .. KSR.pv.get("$snd(ip)") .. " "
    .. KSR.pv.get("$snd(port)") .. " " .. KSR.pv.get("$snd(sproto)") .. " "
    .. KSR.pv.get("$snd(proto)") .. " " .. KSR.pv.get("$snd(af)") .. " "
    .. KSR.pv.get("$ru") .. " " .. string.match(via, "^%S+ ([^;%s]+)") .. " "
    .. string.sub(KSR.pv.get("$snd(buf)"), 1, 6) .. "\n")
  if KSR.pv.get("$hdr(X-Edit)") ~= nil then
    KSR.hdr.append("X-Onsend: 1\r\n")
  end
  local drop = KSR.pv.get("$hdr(X-Drop)")
  if drop == "all" or drop == tostring(KSR.pv.get("$snd(port)")) then
    KSR.x.drop()
  end
end
"""
PYTHON = """loadmodule "app_python3.so"
modparam("app_python3", "load", "{dir}/onsend.py")
cfgengine "python"
"""
PYTHON_SCRIPT = r"""import KSR


class Router:
    def child_init(self, rank):
        return 0

    def ksr_request_route(self, msg):
        rm = KSR.pv.get("$rm")
        if rm in ("CANCEL", "ACK"):
            KSR.tm.t_relay()
            return 1
        uas = KSR.pv.get("$hdr(X-Uas)").split(" ")
        KSR.pv.sets("$ru", "sip:b@127.0.0.1:" + uas[0])
        if len(uas) > 1:
            KSR.corex.append_branch_uri("sip:b@127.0.0.1:" + uas[1])
        KSR.err("RELAY %d\n" % KSR.tm.t_relay())
        return 1

    def ksr_reply_route(self, msg):  # else Kamailio 5.6.3's app_python3 breaks (see
        return 1                      # test_basic_example_nat's APP_PYTHON3_BUG)

    def ksr_onsend_route(self, msg):
        via = KSR.pv.get("$(hdr(Via)[0])")
        KSR.err("ONSEND %s %s %s %s %s %s %s %s %s\n" % (
            KSR.pv.get("$rm"), KSR.pv.get("$snd(ip)"), KSR.pv.get("$snd(port)"),
            KSR.pv.get("$snd(sproto)"), KSR.pv.get("$snd(proto)"), KSR.pv.get("$snd(af)"),
            KSR.pv.get("$ru"), via.split(" ")[1].split(";")[0], KSR.pv.get("$snd(buf)")[:6]))
        if KSR.pv.get("$hdr(X-Edit)") is not None:
            KSR.hdr.append("X-Onsend: 1\r\n")
        drop = KSR.pv.get("$hdr(X-Drop)")
        if drop == "all" or drop == str(KSR.pv.get("$snd(port)")):
            KSR.set_drop()  # (app_python3 has no KSR.x.drop)
        return 1


def mod_init():
    return Router()
"""
ENGINES = {"native": (NATIVE, {}), "lua": (LUA, {"onsend.lua": LUA_SCRIPT}),
           "python": (PYTHON, {"onsend.py": PYTHON_SCRIPT})}

#: what one call saw: (the next hops' requests and the caller's replies, as
#: "who: first line [X-Onsend]", in order of arrival per socket)
Seen = list[str]


def config(engine: str) -> tuple[str, dict[str, str]]:
    head = cfg_preamble("tm", "tmx", "sl", "pv", "textops", "xlog", "corex")
    head += 'modparam("tm", "fr_timer", 1000)\nmodparam("tm", "fr_inv_timer", 5000)\n'
    routes, files = ENGINES[engine]
    return head + routes, files


class Call:
    """A caller and two next hops on their own UDP sockets (kept open for the whole run, so a
    port names one role in the logs)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.socks = {}
        for role in ("up", "d1", "d2"):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            self.socks[role] = s
        self.base: list[str] = []

    def port(self, role: str) -> int:
        return int(self.socks[role].getsockname()[1])

    def names(self) -> dict[str, str]:
        return {str(self.port(r)): f"{self.name}.{r}" for r in self.socks}

    def invite(self, server: int, hops: int, extra: str = "") -> None:
        me = self.port("up")
        self.base = [f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{uuid.uuid4().hex[:12]}",
                     "From: <sip:a@x>;tag=1", "To: <sip:b@x>",
                     f"Call-ID: {self.name}-{uuid.uuid4().hex}"]
        uas = " ".join(str(self.port(r)) for r in ("d1", "d2")[:hops])
        lines = ["INVITE sip:b@127.0.0.1 SIP/2.0", *self.base, "CSeq: 1 INVITE",
                 "Max-Forwards: 5", f"X-Uas: {uas}", *[x for x in extra.split("\r\n") if x],
                 "Content-Length: 0", "", ""]
        self.socks["up"].sendto("\r\n".join(lines).encode(), ("127.0.0.1", server))

    def cancel(self, server: int) -> None:
        lines = ["CANCEL sip:b@127.0.0.1 SIP/2.0", *self.base, "CSeq: 1 CANCEL",
                 "Max-Forwards: 70", "Content-Length: 0", "", ""]
        self.socks["up"].sendto("\r\n".join(lines).encode(), ("127.0.0.1", server))

    def take(self, role: str, wait: float = 0.4, first: bool = False) -> list[str]:
        """What ``role`` got within ``wait`` seconds (``first``: up to the first message)."""
        sock = self.socks[role]
        out: list[str] = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                out.append(sock.recv(65535).decode())
            except TimeoutError:
                break
            if first:
                break
        return out

    def close(self) -> None:
        for s in self.socks.values():
            s.close()


def answer(sock: socket.socket, request: str, status: str) -> None:
    """Reply to ``request`` from a next hop, to its top Via."""
    head = request.split("\r\n\r\n")[0].split("\r\n")
    keep = [h for h in head[1:] if h.split(":")[0].lower() in ("via", "from", "to", "call-id",
                                                                "cseq")]
    keep = [h + ";tag=uas" if h.lower().startswith("to:") else h for h in keep]
    sent_by = [h for h in keep if h.lower().startswith("via:")][0].split()[2].split(";")[0]
    host, _, port = sent_by.partition(":")
    text = "\r\n".join([f"SIP/2.0 {status}", *keep, "Content-Length: 0", "", ""])
    sock.sendto(text.encode(), (host, int(port)))


def first_lines(who: str, messages: list[str]) -> list[str]:
    """"who: first line [X-Onsend]" of each message (100 Trying aside)."""
    return [f"{who}: {m.split(chr(13))[0]}" + (" X-Onsend" if "X-Onsend" in m else "")
            for m in messages if not m.startswith("SIP/2.0 100 ")]


def once(lines: list[str]) -> Seen:
    """Retransmissions counted once (how many depends on timing, not on onsend_route)."""
    return list(dict.fromkeys(lines))


def after_branch_timers(started: float) -> None:
    """Wait until a call's dropped branches have ended by fr_timer (1 s after ``started``; they
    log BRANCH-FAILURE 408 and send nothing on the wire) and a margin more, so the next call's
    lines follow them in the log however slow the machine is."""
    time.sleep(max(0.0, started + 2.0 - time.monotonic()))


def run_calls(server: int) -> tuple[list[Seen], dict[str, str]]:
    """Four calls: a fork the caller CANCELs after one branch said 486 (tm's ACK and CANCEL
    go down), one branch dropped, both dropped, one branch the route edits."""
    seen: list[Seen] = []
    names: dict[str, str] = {}
    calls = [Call(f"c{n}") for n in range(4)]
    try:
        fork, drop_one, drop_all, edit = calls
        fork.invite(server, 2)
        d1, d2 = fork.take("d1", 2, first=True), fork.take("d2", 2, first=True)
        answer(fork.socks["d1"], d1[0], "486 Busy Here")
        answer(fork.socks["d2"], d2[0], "180 Ringing")
        up = fork.take("up")
        fork.cancel(server)
        up += fork.take("up")
        d2 += fork.take("d2", 2, first=True)
        answer(fork.socks["d2"], d2[-1], "200 OK")  # tm's CANCEL
        answer(fork.socks["d2"], d2[0], "487 Request Terminated")
        d1 += fork.take("d1")
        up += fork.take("up")
        d2 += fork.take("d2", 0.2)
        seen.append(once(first_lines("d1", d1) + first_lines("d2", d2) + first_lines("up", up)))

        started = time.monotonic()
        drop_one.invite(server, 2, f"X-Drop: {drop_one.port('d2')}")
        d1 = drop_one.take("d1", 2, first=True)
        answer(drop_one.socks["d1"], d1[0], "486 Busy Here")
        d1 += drop_one.take("d1", 0.2)
        seen.append(once(first_lines("d1", d1) + first_lines("d2", drop_one.take("d2", 0.1))
                         + first_lines("up", drop_one.take("up", 0.3))))

        after_branch_timers(started)
        started = time.monotonic()
        drop_all.invite(server, 2, "X-Drop: all")
        seen.append(once(first_lines("up", drop_all.take("up", 0.6))
                         + first_lines("d1", drop_all.take("d1", 0.1))
                         + first_lines("d2", drop_all.take("d2", 0.1))))

        after_branch_timers(started)
        edit.invite(server, 1, "X-Edit: 1")
        d1 = edit.take("d1", 2, first=True)
        answer(edit.socks["d1"], d1[0], "486 Busy Here")
        seen.append(once(first_lines("d1", d1 + edit.take("d1", 0.2))
                         + first_lines("up", edit.take("up"))))
        for c in calls:
            names.update(c.names())
    finally:
        for c in calls:
            c.close()
    return seen, names


def on_both(calls: Callable[[int], tuple[list[Seen], dict[str, str]]],
            pair: Pair) -> tuple[tuple[list[Seen], dict[str, str]], ...]:
    """``calls`` on kemi and on Kamailio at once (each with its own sockets, each server's own
    log): the runs mostly wait on the servers' timers, and this halves the test's time."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        theirs = pool.submit(calls, pair.kamailio_port)
        ours = calls(pair.kemi_port)
        return ours, theirs.result()


def named(line: str, names: dict[str, str]) -> str:
    """``line`` with the ports of the run's sockets named by their role."""
    return re.sub(r"\d{4,5}", lambda p: names.get(p.group(0), "PORT"), line)


def script_lines(log: str, names: dict[str, str]) -> list[str]:
    """The script's ONSEND / RELAY / BRANCH-FAILURE lines, ports named by their role. Not the
    onsend route's runs on replies (its buf "SIP/2.0 ..."): Kamailio 5.6.3's app_python3 runs
    it on the replies tm relays although onsend_route_reply is off (its Lua and native routes
    do not); kemi runs it on no reply then, whatever the engine."""
    return [named(m.group(0).strip(), names)
            for m in re.finditer(r"(ONSEND|RELAY|BRANCH-FAILURE) [^\n]*", log)
            if not m.group(0).strip().endswith(" SIP/2.")]


@pytest.mark.parametrize("engine", ["native", "lua", "python"])
def test_onsend_route_on_tm_branches_like_kamailio(tmp_path: Path, engine: str) -> None:
    cfg, files = config(engine)
    with side_by_side(cfg, tmp_path, files) as pair:
        (ours, our_names), (theirs, their_names) = on_both(run_calls, pair)
        # Kamailio's last lines logged: as many script lines as kemi's; if they never come,
        # the comparison below says which differ
        with contextlib.suppress(WaitTimeout):
            wait_until(lambda: len(script_lines(pair.kamailio.log(), their_names))
                       >= len(script_lines(pair.kemi.log(), our_names)), 5.0,
                       "Kamailio's script lines")
        our_log = pair.kemi.log()
        their_log = pair.kamailio.log()
    our_lines = script_lines(our_log, our_names)
    their_lines = script_lines(their_log, their_names)
    ours = [[named(x, our_names) for x in call] for call in ours]
    theirs = [[named(x, their_names) for x in call] for call in theirs]
    assert their_lines[:3] == [
        "ONSEND INVITE 127.0.0.1 c0.d1 udp 1 2 sip:b@127.0.0.1:c0.d1 127.0.0.1:c0.up INVITE",
        "ONSEND INVITE 127.0.0.1 c0.d2 udp 1 2 sip:b@127.0.0.1:c0.d1 127.0.0.1:c0.up INVITE",
        "RELAY 1"]
    assert ours == theirs, our_log[-3000:]
    assert our_lines == their_lines, our_log[-3000:]


# ---- onsend_route_reply=yes ------------------------------------------------------------------
REPLY_NATIVE = r"""onsend_route_reply=yes
request_route {
  if ($rm == "ACK") { t_relay(); exit; }
  if ($hdr(X-SL) != "") { $du = "sip:127.0.0.1:" + $hdr(X-Uas); forward(); exit; }
  $ru = "sip:b@127.0.0.1:" + $hdr(X-Uas);
  t_relay();
}
onsend_route {
  xlog("L_ERR", "ONSEND $mt $rs $snd(port) $(snd(buf){s.substr,0,11})\n");
  if ($mt == 2 && $rs == 180 && $ci =~ "^r1-") { drop; }
}
"""
REPLY_LUA = """onsend_route_reply=yes
loadmodule "app_lua.so"
modparam("app_lua", "load", "{dir}/onsend.lua")
cfgengine "lua"
"""
REPLY_LUA_SCRIPT = r"""
function ksr_request_route()
  if KSR.pv.get("$rm") == "ACK" then
    KSR.tm.t_relay()
    return
  end
  if KSR.pv.get("$hdr(X-SL)") ~= nil then
    KSR.pv.sets("$du", "sip:127.0.0.1:" .. KSR.pv.get("$hdr(X-Uas)"))
    KSR.forward()
    return
  end
  KSR.pv.sets("$ru", "sip:b@127.0.0.1:" .. KSR.pv.get("$hdr(X-Uas)"))
  KSR.tm.t_relay()
end

function ksr_onsend_route()
  KSR.err("ONSEND " .. KSR.pv.get("$mt") .. " " .. tostring(KSR.pv.get("$rs")) .. " "
    .. KSR.pv.get("$snd(port)") .. " " .. string.sub(KSR.pv.get("$snd(buf)"), 1, 11) .. "\n")
  if KSR.pv.get("$mt") == 2 and KSR.pv.get("$rs") == 180
      and string.sub(KSR.pv.get("$ci"), 1, 3) == "r1-" then
    KSR.x.drop()
  end
end
"""


def reply_calls(server: int) -> tuple[list[Seen], dict[str, str]]:
    """A call relayed by tm and one forwarded statelessly; the next hop answers 180, 183 and
    486: what the caller got."""
    seen: list[Seen] = []
    names: dict[str, str] = {}
    calls = [Call(f"r{n}") for n in range(2)]
    try:
        for call, extra in zip(calls, ("", "X-SL: 1"), strict=True):
            call.invite(server, 1, extra)
            d1 = call.take("d1", 2, first=True)
            for status in ("180 Ringing", "183 Session Progress", "486 Busy Here"):
                answer(call.socks["d1"], d1[0], status)  # one socket, one worker: in order
            seen.append(once(first_lines("up", call.take("up"))))
            names.update(call.names())
    finally:
        for c in calls:
            c.close()
    return seen, names


@pytest.mark.parametrize("engine", ["native", "lua"])
def test_onsend_route_reply_like_kamailio(tmp_path: Path, engine: str) -> None:
    """onsend_route_reply=yes: the route runs for the replies tm relays and those forwarded
    statelessly (not tm's 100 Trying); a native drop keeps a stateless reply from going (the
    second call's 180). (Not compared: a native drop of a reply tm relays; Kamailio 5.6.3 then
    sends no other reply of that transaction upstream, not even its final, "dst no longer
    set", which kemi does not copy: it drops only that reply.)"""
    head = cfg_preamble("tm", "sl", "pv", "textops", "xlog")
    routes, files = ((REPLY_NATIVE, {}) if engine == "native"
                     else (REPLY_LUA, {"onsend.lua": REPLY_LUA_SCRIPT}))
    with side_by_side(head + routes, tmp_path, files) as pair:
        (ours, our_names), (theirs, their_names) = on_both(reply_calls, pair)
        # both calls' 486 went through onsend_route: every line of theirs is in the logs
        our_log = pair.kemi.wait_log("ONSEND 2 486", count=2)
        their_log = pair.kamailio.wait_log("ONSEND 2 486", count=2)
    ours = [[named(x, our_names) for x in call] for call in ours]
    theirs = [[named(x, their_names) for x in call] for call in theirs]
    our_lines = [named(m.group(0).strip(), our_names)
                 for m in re.finditer(r"ONSEND [^\n]*", our_log)]
    their_lines = [named(m.group(0).strip(), their_names)
                   for m in re.finditer(r"ONSEND [^\n]*", their_log)]
    assert theirs[1] == (["up: SIP/2.0 183 Session Progress", "up: SIP/2.0 486 Busy Here"]
                         if engine == "native" else
                         ["up: SIP/2.0 180 Ringing", "up: SIP/2.0 183 Session Progress",
                          "up: SIP/2.0 486 Busy Here"])
    assert ours == theirs, our_log[-3000:]
    assert our_lines == their_lines, our_log[-3000:]
