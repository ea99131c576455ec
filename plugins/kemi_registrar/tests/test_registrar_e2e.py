"""registrar + usrloc in a real kemi server with two workers, over UDP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_core.testing import KemiProcess, free_port, wait_until
from kemi_registrar.testing import Capture, RegUA, Reply, parse_reply

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=2
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "timer_interval", 1)
modparam("registrar", "min_expires", 0)
request_route {{
    append_to_reply("X-Pid: $pp\\r\\n");
    if (is_method("REGISTER")) {{
        save("location");
        exit;
    }}
    if (is_method("OPTIONS")) {{
        lookup("location");
        $var(rc) = $rc;
        append_to_reply("X-RC: $var(rc)\\r\\n");
        append_to_reply("X-RU: $ru\\r\\n");
        sl_send_reply("200", "Lookup");
        exit;
    }}
    if (is_method("MESSAGE") && $rU == "unregister") {{
        unregister("location", "sip:$fU@127.0.0.1");
        $var(rc) = $rc;
        append_to_reply("X-RC: $var(rc)\\r\\n");
        sl_send_reply("200", "Unregistered");
        exit;
    }}
    if (!lookup("location")) {{
        sl_send_reply("404", "Not Found");
        exit;
    }}
    t_relay();
}}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[KemiProcess, int]]:
    port = free_port()
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.format(port=port))
    with KemiProcess(cfg, tmp_path) as proc:
        yield proc, port


def _ok(reply: Reply | None) -> Reply:
    assert reply is not None, "no reply"
    return reply


def lookup_from_other_worker(port: int, user: str, not_pid: str) -> Reply:
    """OPTIONS from fresh sockets until a worker other than ``not_pid`` answers (the kernel
    spreads sockets over the workers by address hash)."""
    for _ in range(64):
        with RegUA(port) as ua:
            reply = _ok(ua.request("OPTIONS", user))
            if reply.header("X-Pid") != not_pid:
                return reply
    raise AssertionError("every lookup landed on the worker that saved")


def test_a_registration_is_seen_by_the_other_worker_at_once(server: tuple[KemiProcess, int]) -> None:
    _, port = server
    with RegUA(port) as ua:
        reg = _ok(ua.register("alice"))
        assert reg.status == 200
        assert reg.header("Contact") == f"<sip:alice@127.0.0.1:{ua.port}>;expires=3600"
        assert reg.header("Date") is not None
        found = lookup_from_other_worker(port, "alice", reg.header("X-Pid") or "")
        assert found.header("X-RC") == "1"
        assert found.header("X-RU") == f"sip:alice@127.0.0.1:{ua.port}"


def busy_here(phone: Capture, invite: str, ua: RegUA) -> Reply:
    """``phone`` answers the ``invite`` it got 486; the final reply the caller ``ua`` then
    gets, which it ACKs (RFC 3261 17.1.1.3: the ACK of a non-2xx goes to the same hop)."""
    head = invite.split("\r\n\r\n")[0].split("\r\n")
    keep = [h + ";tag=busy" if h.lower().startswith("to:") else h for h in head[1:]
            if h.split(":")[0].lower() in ("via", "from", "to", "call-id", "cseq")]
    # to the top Via's sent-by (RFC 3261 18.2.2): the worker that sent the INVITE
    sent_by = keep[0].split()[2].split(";")[0].split(":")
    phone.sock.sendto("\r\n".join(["SIP/2.0 486 Busy Here", *keep, "Content-Length: 0", "", ""])
                      .encode(), (sent_by[0], int(sent_by[1])))
    ua.sock.settimeout(3.0)
    while (data := ua.sock.recv(65535)).startswith(b"SIP/2.0 1"):
        pass
    reply = parse_reply(data)
    ack = [f"ACK sip:bob@{ua.domain} SIP/2.0",
           *(f"{n}: {reply.header(n)}" for n in ("Via", "From", "To", "Call-ID")),
           "CSeq: 1 ACK", "Max-Forwards: 70", "Content-Length: 0", "", ""]
    ua.sock.sendto("\r\n".join(ack).encode(), ua.server)
    return reply


def test_call_to_registered_user_then_unregister_gives_404(server: tuple[KemiProcess, int]) -> None:
    _, port = server
    phone = Capture()
    try:
        with RegUA(port) as ua:
            assert _ok(ua.register("bob", [f"<sip:bob@127.0.0.1:{phone.port}>"])).status == 200
            ua.request("INVITE", "bob", timeout=0.2)  # no final reply yet: the phone rings
            invite = phone.recv()
            assert invite is not None
            assert invite.startswith(f"INVITE sip:bob@127.0.0.1:{phone.port} SIP/2.0\r\n")
            # the phone says busy, so that no transaction is left for the server's stop to wait on
            busy = busy_here(phone, invite, ua)
            assert busy.status == 486
            gone = _ok(ua.register("bob", [f"<sip:bob@127.0.0.1:{phone.port}>;expires=0"]))
            assert gone.status == 200 and gone.header("Contact") is None
            assert _ok(ua.request("INVITE", "bob")).status == 404
    finally:
        phone.close()


def test_unregister_function_and_rpcs(server: tuple[KemiProcess, int]) -> None:
    proc, port = server
    with RegUA(port) as ua:
        _ok(ua.register("carol", [f"<sip:carol@127.0.0.1:{ua.port}>;q=0.5",
                                  "<sip:carol@10.0.0.1:5060>"]))
        looked = proc.rpc("ul.lookup", "location", "carol")
        assert looked["AoR"] == "carol"
        contacts = [c["Contact"] for c in looked["Contacts"]]
        assert [c["Address"] for c in contacts] == [f"sip:carol@127.0.0.1:{ua.port}",
                                                    "sip:carol@10.0.0.1:5060"]
        assert contacts[0]["Q"] == 0.5 and contacts[1]["Q"] == -1
        assert contacts[0]["Expires"] == pytest.approx(3600, abs=2)
        assert contacts[0]["User-Agent"] == "regua" and contacts[0]["State"] == "CS_NEW"
        assert contacts[0]["Socket"] == f"udp:127.0.0.1:{port}"
        dump = proc.rpc("ul.dump")
        (domain,) = [d["Domain"] for d in dump["Domains"] if d["Domain"]["Domain"] == "location"]
        assert [a["Info"]["AoR"] for a in domain["AoRs"]] == ["carol"]
        assert proc.rpc("ul.dump", "brief")["Domains"][0]["Domain"]["AoRs"] == [{"AoR": "carol"}]
        # unregister() from the script
        from_carol = "From: <sip:carol@127.0.0.1>;tag=x\r\n"
        reply = _ok(ua.send(f"MESSAGE sip:unregister@127.0.0.1 SIP/2.0\r\n{ua._via()}\r\n"
                            f"{from_carol}To: <sip:unregister@127.0.0.1>\r\nCall-ID: u1\r\n"
                            "CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"))
        assert reply.header("X-RC") == "1"
        assert _ok(ua.request("OPTIONS", "carol")).header("X-RC") == "-1"
        # ul.add then ul.rm
        proc.rpc("ul.add", "location", "dave", "sip:dave@127.0.0.1:7000", 600, 1, ".", 0, 0, 0)
        assert _ok(ua.request("OPTIONS", "dave")).header("X-RU") == "sip:dave@127.0.0.1:7000"
        proc.rpc("ul.rm", "location", "dave")
        assert _ok(ua.request("OPTIONS", "dave")).header("X-RC") == "-1"
        with pytest.raises(Exception, match="AOR not found"):
            proc.rpc("ul.lookup", "location", "dave")


def test_expired_contacts_are_removed_by_the_timer(server: tuple[KemiProcess, int]) -> None:
    proc, port = server
    with RegUA(port) as ua:
        reply = _ok(ua.register("erin", [f"<sip:erin@127.0.0.1:{ua.port}>;expires=1"]))
        assert reply.header("Contact") == f"<sip:erin@127.0.0.1:{ua.port}>;expires=1"

        def gone() -> bool:
            aors = proc.rpc("ul.dump", "brief")["Domains"][0]["Domain"]["AoRs"]
            return not aors

        wait_until(gone, 10, "the usrloc timer to remove erin's expired contact")
        assert _ok(ua.request("OPTIONS", "erin")).header("X-RC") == "-1"
