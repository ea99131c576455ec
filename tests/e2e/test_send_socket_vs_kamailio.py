"""The socket a request leaves from when the script forces one ($fs, force_send_socket), on
kemi and on Kamailio 5.6 with the same config listening on two UDP ports.

What Kamailio 5.6 does, learnt by running it: forward() and t_relay() send from the forced
socket and name it in their Via; a branch appended with append_branch() leaves from the socket
forced when it was appended (none: the usual one), branch 0 from the one forced at t_relay(); a
branch route's $fs moves that branch; registrar's lookup() forces the socket each contact
registered through. With several workers kemi does the same (the kernel steers each reply to
the worker holding its transaction: docs/design.md), which a test checks with children=2.
"""

from __future__ import annotations

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
    not kamailio_available("tm.so", "sl.so", "pv.so", "textops.so", "corex.so", "usrloc.so",
                           "registrar.so", "ctl.so"),
    reason="Kamailio 5.6 is not installed")]

ROUTES = r"""listen=udp:127.0.0.1:{port2}
request_route {
  if ($hdr(X-Fs) != "") { $fs = "udp:127.0.0.1:" + $hdr(X-Fs); }
  if ($hdr(X-Append) != "") { append_branch("sip:x@127.0.0.1:$hdr(X-Callee2)"); }
  if ($hdr(X-Fs-Then) != "") { $fs = "udp:127.0.0.1:" + $hdr(X-Fs-Then); }
  if ($hdr(X-Branch-Fs) != "") { t_on_branch("MOVE"); }
  if ($hdr(X-Tm) != "") {
    $ru = "sip:y@127.0.0.1:" + $hdr(X-Callee);
    t_relay();
  } else {
    $du = "sip:127.0.0.1:" + $hdr(X-Callee);
    forward();
  }
  exit;
}
branch_route[MOVE] {
  if ($rU == "x") { $fs = "udp:127.0.0.1:" + $hdr(X-Branch-Fs); }
}
"""

#: (headers: which port each names, "1" for a flag) -> which listen port each callee saw the
#: request from, and which its Via named ("P1": the first, "P2": the second)
CASES: list[dict[str, str]] = [
    {"X-Fs": "P2"},  # a stateless forward
    {"X-Tm": "1", "X-Fs": "P2"},
    {"X-Tm": "1", "X-Fs": "P2", "X-Append": "1", "X-Fs-Then": "P1"},
    {"X-Tm": "1", "X-Append": "1", "X-Fs-Then": "P2"},
    {"X-Tm": "1", "X-Fs": "P2", "X-Append": "1"},
    {"X-Tm": "1", "X-Append": "1", "X-Branch-Fs": "P2"},
    {"X-Tm": "1", "X-Fs": "P2", "X-Append": "1", "X-Branch-Fs": "P1"},
]


@pytest.fixture
def callees() -> Iterator[tuple[socket.socket, socket.socket, socket.socket]]:
    """The caller, and the callees of branch 0 and of the appended branch."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    yield socks[0], socks[1], socks[2]
    for s in socks:
        s.close()


def take_request(sock: socket.socket, call_id: str) -> tuple[int, str] | None:
    """The source port and top Via sent-by of the OPTIONS of ``call_id`` that reaches
    ``sock`` (answered 200, so that tm stops sending it), None if none comes in 2 s."""
    deadline = time.monotonic() + 2.0
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, src = sock.recvfrom(65535)
        except TimeoutError:
            return None
        text = data.decode()
        if not text.startswith("OPTIONS") or f"Call-ID: {call_id}\r\n" not in text:
            continue  # another case's late retransmission
        head = text.split("\r\n\r\n")[0].split("\r\n")
        keep = [h for h in head[1:] if h.split(":")[0].lower() in
                ("via", "from", "to", "call-id", "cseq")]
        sock.sendto(("SIP/2.0 200 OK\r\n" + "\r\n".join(keep)
                     + "\r\nContent-Length: 0\r\n\r\n").encode(), src)
        via = next(h for h in head if h.lower().startswith("via:"))
        return src[1], via.split()[2].split(";")[0]
    return None


def run_cases(port: int, port2: int, caller: socket.socket, callee: socket.socket,
              callee2: socket.socket, tag: str) -> list[list[str]]:
    names = {str(port): "P1", str(port2): "P2"}
    ports = {"P1": str(port), "P2": str(port2)}
    seen = []
    for n, case in enumerate(CASES):
        call_id = f"{tag}-{n}"
        extra = {"X-Callee": str(callee.getsockname()[1]),
                 "X-Callee2": str(callee2.getsockname()[1])}
        extra.update({k: ports.get(v, v) for k, v in case.items()})
        me = str(caller.getsockname()[1])
        text = request_text("OPTIONS", call_id=call_id,
                            extra="\r\n".join(f"{k}: {v}" for k, v in extra.items()))
        caller.sendto(text.replace("PORT", me).encode(), ("127.0.0.1", port))
        got = []
        for sock in (callee, callee2) if "X-Append" in case else (callee,):
            found = take_request(sock, call_id)
            got.append("nothing" if found is None else
                       f"from {names.get(str(found[0]), found[0])} via "
                       f"{found[1].replace(str(port), 'P1').replace(str(port2), 'P2')}")
        seen.append(got)
    return seen


def second_port(cfg: Path) -> int:
    return int(cfg.read_text().split("listen=udp:127.0.0.1:")[2].split()[0])


def test_requests_leave_from_the_forced_socket_as_kamailio(
        tmp_path: Path, callees: tuple[socket.socket, socket.socket, socket.socket]) -> None:
    caller, callee, callee2 = callees
    cfg = cfg_preamble("tm", "sl", "pv", "textops", "corex") + ROUTES
    with side_by_side(cfg, tmp_path) as pair:
        theirs = run_cases(pair.kamailio_port, second_port(tmp_path / "kamailio" / "kamailio.cfg"),
                           caller, callee, callee2, "k")
        ours = run_cases(pair.kemi_port, second_port(tmp_path / "kemi" / "kamailio.cfg"),
                         caller, callee, callee2, "m")
    assert theirs[0] == ["from P2 via 127.0.0.1:P2"]  # what Kamailio does, as documented above
    assert theirs[2] == ["from P1 via 127.0.0.1:P1", "from P2 via 127.0.0.1:P2"]
    assert ours == theirs


def test_several_workers_send_from_the_forced_socket_too(
        tmp_path: Path, callees: tuple[socket.socket, socket.socket, socket.socket]) -> None:
    """children=2: a branch forced onto the second listen port leaves from it and names it in
    its Via, as with one worker, and the callee's 200 (from one source port, whichever
    worker sent the request) comes back to the transaction (tm counts it; a reply handled by
    another worker would be forwarded statelessly and the transaction would wait for its
    final)."""
    caller, callee, callee2 = callees
    port, port2 = free_port(), free_port()
    cfg = (cfg_preamble("tm", "sl", "pv", "textops", "corex") + ROUTES).replace(
        "children=1", "children=2").replace("{port}", str(port)).replace(
        "{port2}", str(port2)).replace('mpath="{mpath}"\n', "")
    cfg = "\n".join(line for line in cfg.splitlines() if "ctl" not in line) + "\n"
    (tmp_path / "kamailio.cfg").write_text(cfg)
    with KemiProcess(tmp_path / "kamailio.cfg", tmp_path) as srv:
        seen = []
        for n in range(6):  # the SO_REUSEPORT hash spreads the callers' flows
            caller.close()
            caller = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            caller.bind(("127.0.0.1", 0))
            me = str(caller.getsockname()[1])
            extra = (f"X-Callee: {callee.getsockname()[1]}\r\nX-Tm: 1\r\nX-Fs: {port2}")
            text = request_text("OPTIONS", call_id=f"w-{n}", extra=extra)
            caller.sendto(text.replace("PORT", me).encode(), ("127.0.0.1", port))
            found = take_request(callee, f"w-{n}")
            assert found is not None, srv.log()[-2000:]
            seen.append(found)
            caller.settimeout(5)
            assert caller.recv(65535).startswith(b"SIP/2.0 200 "), srv.log()[-2000:]
        caller.close()
        stats = srv.wait_tm_settled(6)
    assert seen == [(port2, f"127.0.0.1:{port2}")] * 6  # the forced socket, in the Via too
    assert stats["2xx"] == 6 and stats["created"] == 6


LOOKUP_ROUTES = r"""listen=udp:127.0.0.1:{port2}
request_route {
  if (is_method("REGISTER")) { save("location"); exit; }
  if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
  t_relay();
  exit;
}
"""


def register_then_reach(port: int, port2: int, phones: tuple[socket.socket, socket.socket],
                        caller: socket.socket, tag: str) -> list[str]:
    """Each phone registers through another listen port (the first through P2, the second
    through P1); a request for each then comes in on the other port: where it leaves from."""
    names = {port: "P1", port2: "P2"}
    seen = []
    for ph, (reg_at, comes_in_at) in zip(phones, ((port2, port), (port, port2)), strict=True):
        me = ph.getsockname()[1]
        aor = f"sip:{tag}{me}@127.0.0.1"
        reg = request_text("REGISTER", ruri="sip:127.0.0.1", frm=f"<{aor}>;tag=r", to=f"<{aor}>",
                           call_id=f"reg-{tag}-{me}",
                           extra=f"Contact: <sip:phone@127.0.0.1:{me}>\r\nExpires: 60")
        ph.sendto(reg.replace("PORT", str(me)).encode(), ("127.0.0.1", reg_at))
        ph.settimeout(5)
        assert ph.recv(65535).startswith(b"SIP/2.0 200 ")
        call_id = f"o-{tag}-{me}"
        text = request_text("OPTIONS", ruri=aor, call_id=call_id)
        caller.sendto(text.replace("PORT", str(caller.getsockname()[1])).encode(),
                      ("127.0.0.1", comes_in_at))
        found = take_request(ph, call_id)
        seen.append("nothing" if found is None else
                    f"registered at {names[reg_at]}, in at {names[comes_in_at]}: from "
                    f"{names.get(found[0], found[0])} via "
                    f"{found[1].replace(str(port), 'P1').replace(str(port2), 'P2')}")
    return seen


def test_lookup_sends_from_the_socket_the_contact_registered_through(
        tmp_path: Path, callees: tuple[socket.socket, socket.socket, socket.socket]) -> None:
    caller, phone, phone2 = callees
    cfg = cfg_preamble("tm", "sl", "pv", "textops", "usrloc", "registrar") + LOOKUP_ROUTES
    with side_by_side(cfg, tmp_path) as pair:
        theirs = register_then_reach(
            pair.kamailio_port, second_port(tmp_path / "kamailio" / "kamailio.cfg"),
            (phone, phone2), caller, "k")
        ours = register_then_reach(
            pair.kemi_port, second_port(tmp_path / "kemi" / "kamailio.cfg"),
            (phone, phone2), caller, "m")
    assert theirs == ["registered at P2, in at P1: from P2 via 127.0.0.1:P2",
                      "registered at P1, in at P2: from P1 via 127.0.0.1:P1"]
    assert ours == theirs


#: the same routes, the second listen advertising another address
ADVERTISE_ROUTES = ROUTES.replace("listen=udp:127.0.0.1:{port2}\n",
                                  "listen=udp:127.0.0.1:{port2} advertise 127.0.0.9:5998\n", 1)


def test_via_names_the_address_the_listen_advertises_as_kamailio(
        tmp_path: Path, callees: tuple[socket.socket, socket.socket, socket.socket]) -> None:
    """``listen=... advertise host:port``: our Via names the advertised address of the socket
    the request leaves from (a server behind NAT)."""
    caller, callee, _ = callees
    cfg = (cfg_preamble("tm", "sl", "pv", "textops", "corex").replace(
        "listen=udp:127.0.0.1:{port}", "listen=udp:127.0.0.1:{port} advertise 127.0.0.9:5999")
        + ADVERTISE_ROUTES)
    seen = {}
    with side_by_side(cfg, tmp_path) as pair:
        for who, port, work in (("kamailio", pair.kamailio_port, tmp_path / "kamailio"),
                                ("kemi", pair.kemi_port, tmp_path / "kemi")):
            port2 = second_port(work / "kamailio.cfg")
            vias = []
            for n, headers in enumerate(({}, {"X-Tm": "1"}, {"X-Fs": str(port2)},
                                         {"X-Tm": "1", "X-Fs": str(port2)})):
                call_id = f"adv-{who}-{n}"
                extra = {"X-Callee": str(callee.getsockname()[1]), **headers}
                text = request_text("OPTIONS", call_id=call_id,
                                    extra="\r\n".join(f"{k}: {v}" for k, v in extra.items()))
                caller.sendto(text.replace("PORT", str(caller.getsockname()[1])).encode(),
                              ("127.0.0.1", port))
                found = take_request(callee, call_id)
                vias.append("nothing" if found is None else found[1])
            seen[who] = vias
    assert seen["kamailio"] == ["127.0.0.9:5999", "127.0.0.9:5999",
                                "127.0.0.9:5998", "127.0.0.9:5998"]
    assert seen["kemi"] == seen["kamailio"]


NAMED_ROUTES = r"""listen=udp:127.0.0.1:{port2} name "two"
request_route {
  if ($hdr(X-Fs) != "") { $fs = "udp:127.0.0.1:" + $hdr(X-Fs); }
  if ($hdr(X-Fsn) != "") { $fsn = $hdr(X-Fsn); }
  xlog("L_ERR", "FSN $ci [$fsn] [$fs]\n");
  $du = "sip:127.0.0.1:" + $hdr(X-Callee);
  forward();
  exit;
}
"""


def test_fsn_names_and_forces_a_named_listen_socket_as_kamailio(
        tmp_path: Path, callees: tuple[socket.socket, socket.socket, socket.socket]) -> None:
    """$fsn: read, the name of the forced socket's listen; set, that listen forced (a name no
    listen has forces none)."""
    caller, callee, _ = callees
    cfg = (cfg_preamble("sl", "pv", "textops", "xlog").replace(
        "listen=udp:127.0.0.1:{port}", 'listen=udp:127.0.0.1:{port} name "one"') + NAMED_ROUTES)
    seen = {}
    with side_by_side(cfg, tmp_path) as pair:
        for who, port, server in (("kamailio", pair.kamailio_port, pair.kamailio),
                                  ("kemi", pair.kemi_port, pair.kemi)):
            port2 = second_port(tmp_path / who / "kamailio.cfg")
            names = {port: "P1", port2: "P2"}
            got = []
            for n, headers in enumerate(({}, {"X-Fs": str(port2)}, {"X-Fsn": "two"},
                                         {"X-Fsn": "nope"})):
                call_id = f"fsn-{n}"
                extra = {"X-Callee": str(callee.getsockname()[1]), **headers}
                text = request_text("OPTIONS", call_id=call_id,
                                    extra="\r\n".join(f"{k}: {v}" for k, v in extra.items()))
                caller.sendto(text.replace("PORT", str(caller.getsockname()[1])).encode(),
                              ("127.0.0.1", port))
                found = take_request(callee, call_id)
                got.append("nothing" if found is None else f"from {names.get(found[0])}")
            log = server.wait_log("FSN fsn-3 ")
            got += [line.split("FSN ", 1)[1].replace(str(port2), "P2")
                    for line in log.splitlines() if "FSN fsn-" in line]
            seen[who] = got
    assert seen["kamailio"][:4] == ["from P1", "from P2", "from P2", "from P1"]
    assert seen["kemi"] == seen["kamailio"]
