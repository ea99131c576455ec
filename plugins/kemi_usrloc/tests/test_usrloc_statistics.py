"""usrloc's statistics through a routing run: users and contacts follow saves, refreshes,
removals and expiry; the timer's removals are counted in <table>_expires. (The same names and
values as Kamailio's through kamcmd: tests/e2e/test_registrar_vs_kamailio.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:5060
loadmodule "sl.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "timer_interval", 10)
request_route {
    if (!save("location")) {
        sl_reply_error();
    }
}
"""


def register(user: str, contacts: list[str], expires: int, cseq: int) -> str:
    lines = ["REGISTER sip:127.0.0.1 SIP/2.0",
             f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{user}{cseq}",
             f"From: <sip:{user}@127.0.0.1>;tag=f{cseq}", f"To: <sip:{user}@127.0.0.1>",
             f"Call-ID: {user}-reg", f"CSeq: {cseq} REGISTER",
             *(f"Contact: {c}" for c in contacts), f"Expires: {expires}"]
    return "\r\n".join(lines) + "\r\n\r\n"


def stats(router: Any) -> dict[str, int]:
    return {name: router.core.counters.get("usrloc", name).value
            for name in ("registered_users", "location_users", "location_contacts",
                         "location_expires")} | {
        name: router.core.counters.get("registrar", name).value
        for name in ("accepted_regs", "rejected_regs")}


def test_counts_follow_the_location_table(kemi_router: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG)
    router = kemi_router(cfg)
    assert set(stats(router).values()) == {0}
    a1, a2 = "<sip:alice@127.0.0.1:5071>", "<sip:alice@127.0.0.1:5072>"
    router.request(register("alice", [a1, a2], 3600, 1))
    router.request(register("bob", ["<sip:bob@127.0.0.1:5073>"], 60, 1))
    router.request(register("alice", [a1], 3600, 2))  # a refresh moves nothing
    assert stats(router) == {"registered_users": 2, "location_users": 2,
                             "location_contacts": 3, "location_expires": 0,
                             "accepted_regs": 3, "rejected_regs": 0}
    router.request(register("alice", [a2], 0, 3))  # one binding removed
    router.request(register("alice", ["*"], 60, 4))  # refused: '*' with a non-zero expires
    assert stats(router)["location_contacts"] == 2
    assert (stats(router)["accepted_regs"], stats(router)["rejected_regs"]) == (4, 1)
    router.advance(75)  # bob's binding expires; the timer removes it
    assert stats(router) == {"registered_users": 1, "location_users": 1,
                             "location_contacts": 1, "location_expires": 1,
                             "accepted_regs": 4, "rejected_regs": 1}
    router.request(register("alice", ["*"], 0, 5))
    assert (stats(router)["registered_users"], stats(router)["location_contacts"]) == (0, 0)
    assert router.rpc("stats.get_statistics", "registrar:") == [
        "registrar:accepted_regs = 5", "registrar:default_expire = 3600",
        "registrar:default_expires_range = 0", "registrar:expires_range = 0",
        "registrar:max_contacts = 0", "registrar:max_expires = 0", "registrar:rejected_regs = 1"]
