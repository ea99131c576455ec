"""Branch flags belong to a branch: what the request route or the branch route set for a branch
is what that branch's onreply, failure and branch-failure routes see (Kamailio keeps them with
the branch; the official example's NATMANAGE reads FLB_NATB in its reply route)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:5060
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "kex.so"
loadmodule "textops.so"
loadmodule "xlog.so"

request_route {
    setbflag(3);
    append_branch("sip:carol@127.0.0.1:5090");
    $du = "sip:127.0.0.1:5080";
    t_on_branch("BRANCH");
    t_on_reply("REPLY");
    t_on_failure("FAILED");
    t_relay();
}

branch_route[BRANCH] {
    if ($T_branch_idx == 1) setbflag(6);
    append_hf("X-Bf: $bf\\r\\n");
}

onreply_route[REPLY] {
    xlog("L_INFO", "reply $rs branch $T_branch_idx bflags $bf\\n");
}

failure_route[FAILED] {
    xlog("L_INFO", "failure bflags $bf\\n");
}
"""

INVITE = """\
INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKbf1
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>
Call-ID: bflags-1@127.0.0.1
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:5070>
"""


def test_each_branch_keeps_its_flags(kemi_router: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG)
    router = kemi_router(cfg)
    out = router.request(INVITE)
    first, second = out.forwarded
    assert (first.msg.header("X-Bf"), second.msg.header("X-Bf")) == ("8", "64")
    ringing = router.reply(second, 180, "Ringing")
    assert "reply 180 branch 1 bflags 64" in ringing.logs
    router.reply(first, 486, "Busy Here")
    done = router.reply(second, 404, "Not Found")
    assert "reply 404 branch 1 bflags 64" in done.logs
    assert "failure bflags 64" in done.logs  # the 404 of branch 1 wins
