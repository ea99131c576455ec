"""Registrations age on the router's clock: save() and lookup() through usrloc's shared store,
then advance() past the expiry and the AOR is gone (reads, and usrloc's timer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:5060
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "timer_interval", 10)

request_route {
	if (is_method("REGISTER")) {
		save("location");
		exit;
	}
	if (!lookup("location")) {
		sl_send_reply("404", "Not Here");
		exit;
	}
	t_relay();
}
"""

REGISTER = """\
REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKreg1
Max-Forwards: 70
From: <sip:alice@example.com>;tag=r1
To: <sip:alice@example.com>
Call-ID: reg-1@127.0.0.1
CSeq: 1 REGISTER
Contact: <sip:alice@127.0.0.1:5072>;expires=60
"""

INVITE = """\
INVITE sip:alice@example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKinv{n}
Max-Forwards: 70
From: <sip:bob@example.com>;tag=b{n}
To: <sip:alice@example.com>
Call-ID: inv-{n}@127.0.0.1
CSeq: 1 INVITE
Contact: <sip:bob@127.0.0.1:5070>
"""


def test_registration_routes_calls_until_it_expires(kemi_router: Any, tmp_path: Path) -> None:
    (tmp_path / "kamailio.cfg").write_text(CFG)
    router = kemi_router(tmp_path / "kamailio.cfg")
    reg = router.request(REGISTER, source="udp:127.0.0.1:5072")
    assert [r.status for r in reg.replies] == [200]
    assert "expires=60" in (reg.replies[0].header("contact") or "")

    call = router.request(INVITE.format(n=1))
    assert [f.dest for f in call.forwarded] == ["udp:127.0.0.1:5072"]
    assert call.forwarded[0].msg.ruri == "sip:alice@127.0.0.1:5072"

    router.advance(59)
    assert router.request(INVITE.format(n=2)).forwarded  # still registered

    router.advance(2)  # past the 60 s: lookup finds nothing, and usrloc's timer drops it
    gone = router.request(INVITE.format(n=3))
    assert gone.forwarded == [] and [(r.status, r.reason) for r in gone.replies] == [(404, "Not Here")]
    router.advance(10)
    dump = router.rpc("ul.dump")
    assert "alice@example.com" not in str(dump)


def _register(router: Any, cseq: int, extra: str, base: str = REGISTER) -> Any:
    """REGISTER number ``cseq`` of alice's phone (``base`` plus ``extra`` header lines): its
    one reply, a 200."""
    reg = router.request(base.replace("CSeq: 1 ", f"CSeq: {cseq} ") + extra,
                         source="udp:127.0.0.1:5072")
    assert [r.status for r in reg.replies] == [200]
    return reg.replies[0]


def _contact_of(router: Any) -> dict[str, Any]:
    """The one contact of alice in ul.dump (no use_domain: the AOR is the user)."""
    for domain in router.rpc("ul.dump")["Domains"]:
        for record in domain["Domain"]["AoRs"]:
            if record["Info"]["AoR"] == "alice":
                (contact,) = record["Info"]["Contacts"]
                return dict(contact["Contact"])
    raise AssertionError("alice is not registered")


def test_same_contact_with_other_expires_or_allow_is_not_taken_from_the_memo(
        kemi_router: Any, tmp_path: Path) -> None:
    """save() memoises the bindings of a Contact value; what else they depend on (Expires,
    Allow) must still change them."""
    (tmp_path / "kamailio.cfg").write_text(CFG)
    router = kemi_router(tmp_path / "kamailio.cfg")
    plain = REGISTER.replace(";expires=60", "")
    steps = [("", 3600, 0xFFFFFFFF), ("Expires: 120\n", 120, 0xFFFFFFFF),
             ("Expires: 120\nAllow: INVITE, BYE\n", 120, 1 | 8), ("", 3600, 0xFFFFFFFF),
             ("Allow: MESSAGE\n", 3600, 256)]
    for cseq, (extra, expires, methods) in enumerate(steps, start=1):
        ok = _register(router, cseq, extra, plain)
        assert f";expires={expires}" in (ok.header("contact") or "")
        assert _contact_of(router)["Methods"] == methods


#: CFG's modules with the routing in Lua (the script's path filled in as {script})
LUA_CFG = CFG[: CFG.index("request_route")] + """loadmodule "app_lua.so"
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

Q_SCRIPT = """
function ksr_request_route()
    local q = KSR.pv.get("$hdr(X-Q)")
    if q then KSR.registrar.set_q_override(q) end
    KSR.registrar.save("location", 0)
end
"""


def test_same_contact_with_another_q_override_is_not_taken_from_the_memo(
        kemi_router: Any, tmp_path: Path) -> None:
    """set_q_override changes the q of the bindings save() memoises by Contact value."""
    (tmp_path / "route.lua").write_text(Q_SCRIPT)
    (tmp_path / "kamailio.cfg").write_text(LUA_CFG.format(script=tmp_path / "route.lua"))
    router = kemi_router(tmp_path / "kamailio.cfg")
    for cseq, (extra, q) in enumerate([("", -1), ("X-Q: 0.5\n", 0.5), ("X-Q: 0.2\n", 0.2),
                                       ("", -1)], start=1):
        _register(router, cseq, extra)
        assert _contact_of(router)["Q"] == q


def test_xavp_cfg_settings_apply_and_bypass_the_memo(kemi_router: Any, tmp_path: Path) -> None:
    """With modparam xavp_cfg, the message's $xavp(reg=>expires) sets the bindings' expires:
    those bindings are not taken from (nor left in) the memo of the Contact value."""
    cfg = CFG.replace('modparam("usrloc", "timer_interval", 10)\n',
                      'modparam("usrloc", "timer_interval", 10)\n'
                      'modparam("registrar", "xavp_cfg", "reg")\n')
    cfg = cfg.replace('\t\tsave("location");', '\t\tif (is_present_hf("X-Exp")) {\n'
                      '\t\t\t$xavp(reg=>expires) = 120;\n\t\t}\n\t\tsave("location");')
    (tmp_path / "kamailio.cfg").write_text(cfg)
    router = kemi_router(tmp_path / "kamailio.cfg")
    for cseq, (extra, expires) in enumerate([("", 60), ("X-Exp: 1\n", 120), ("", 60),
                                             ("X-Exp: 1\n", 120)], start=1):
        ok = _register(router, cseq, extra)
        assert f";expires={expires}" in (ok.header("contact") or "")


def _aors(router: Any) -> list[str]:
    return [record["Info"]["AoR"] for domain in router.rpc("ul.dump")["Domains"]
            for record in domain["Domain"]["AoRs"]]


def test_refreshes_taken_from_the_memo_keep_cseq_order_and_what_changed(
        kemi_router: Any, tmp_path: Path) -> None:
    """save() memoises a whole request by the phone's header lines; the Call-ID, CSeq and
    what the lines say still count at every refresh (RFC 3261 10.3 steps 7-8)."""
    (tmp_path / "kamailio.cfg").write_text(CFG)
    router = kemi_router(tmp_path / "kamailio.cfg")
    ua = "User-Agent: phone/1\n"
    for cseq in (1, 2, 3):  # the second and third come from the memo
        _register(router, cseq, ua)
        contact = _contact_of(router)
        assert (contact["CSeq"], contact["Call-ID"], contact["User-Agent"]) == (
            cseq, "reg-1@127.0.0.1", "phone/1")
    # the same lines with an older CSeq of the same Call-ID: refused, the binding unchanged
    old = router.request(REGISTER.replace("CSeq: 1 ", "CSeq: 2 ") + ua,
                         source="udp:127.0.0.1:5072")
    assert [(r.status, r.header("p-registrar-error")) for r in old.replies] == [
        (400, "Invalid CSeq number")]
    assert _contact_of(router)["CSeq"] == 3
    # another Call-ID may start again at CSeq 1
    _register(router, 1, ua, REGISTER.replace("reg-1@", "reg-2@"))
    assert (_contact_of(router)["Call-ID"], _contact_of(router)["CSeq"]) == ("reg-2@127.0.0.1", 1)
    # another User-Agent line is another request
    _register(router, 2, "User-Agent: phone/2\n", REGISTER.replace("reg-1@", "reg-2@"))
    assert _contact_of(router)["User-Agent"] == "phone/2"
    # the same Contact for another To: another AOR
    _register(router, 5, ua, REGISTER.replace("To: <sip:alice@", "To: <sip:bob@"))
    assert sorted(_aors(router)) == ["alice", "bob"]
    # expires 0 from the memoised phone: its binding goes
    unreg = REGISTER.replace("reg-1@", "reg-2@").replace(";expires=60", ";expires=0")
    _register(router, 3, ua, unreg)
    _register(router, 4, ua, unreg)  # (a memo hit: nothing left to remove)
    assert _aors(router) == ["bob"]
