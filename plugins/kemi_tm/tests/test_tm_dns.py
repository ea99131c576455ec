"""t_relay to a name: the branch goes out when the name resolves (the worker is not held while
it is looked up), a name that does not resolve ends the branch as a local 478, and once the name
resolves again (its negative entry expired) calls go through.

The DNS server here answers after 50 ms of the router's clock, with what ``answers`` says at the
time of the question (None: no such name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kemi_core.api import Resolver

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:5060
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"

request_route {
    if ($rm == "CANCEL") {
        t_relay();
        exit;
    }
    if ($rU == "moved") {
        route(MOVED);
        exit;
    }
    $du = "sip:next.example:5090";
    t_on_failure("FAILED");
    if (!t_relay()) {
        sl_send_reply("500", "No route");
    }
}

route[MOVED] {
    $du = "sip:next.example:5090";
    t_on_branch("TAGGED");
    t_relay();
}

branch_route[TAGGED] {
    xlog("L_INFO", "branch route on $ru\n");
    append_hf("X-Tagged: yes\r\n");
}

failure_route[FAILED] {
    xlog("L_INFO", "failed with $T_reply_code\\n");
}
"""


def invite(n: int, method: str = "INVITE", user: str = "bob") -> str:
    return f"""\
{method} sip:{user}@example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKdns{n}
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a{n}
To: <sip:bob@example.com>
Call-ID: dns-{n}@127.0.0.1
CSeq: 1 {method}
Contact: <sip:alice@127.0.0.1:5070>
"""


class SlowDns:
    """Answers each question 50 ms later (on the router's clock) with ``answers[name]``."""

    def __init__(self, router: Any) -> None:
        self.clock = router.clock
        self.answers: dict[str, str | None] = {}
        self.asked: list[str] = []

    def __call__(self, name: str, done: Any) -> None:
        self.asked.append(name)
        self.clock.call_later(0.05, lambda: done(self.answers.get(name)))


@pytest.fixture
def router(kemi_router: Any, tmp_path: Path) -> Any:
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG)
    return kemi_router(cfg)


@pytest.fixture
def dns(router: Any) -> SlowDns:
    server = SlowDns(router)
    router.core.resolver = Resolver(router.clock.now, server, ttl=300, negative_ttl=10)
    return server


def test_a_branch_waits_for_its_name_then_goes(router: Any, dns: SlowDns) -> None:
    dns.answers["next.example"] = "127.0.0.1"
    out = router.request(invite(1))
    assert [r.status for r in out.replies] == [100] and out.forwarded == []
    later = router.advance(0.1)
    (branch,) = later.forwarded
    assert branch.dest == "udp:127.0.0.1:5090"
    assert branch.msg.via.host == "127.0.0.1" and branch.msg.ruri == "sip:bob@example.com"
    ok = router.reply(branch, 200, "OK")
    assert [r.status for r in ok.replies] == [200]
    # cached now: the next call goes at once, no new question
    assert len(router.request(invite(2)).forwarded) == 1
    assert dns.asked == ["next.example"]


def test_dns_failure_then_recovery(router: Any, dns: SlowDns) -> None:
    dns.answers["next.example"] = None  # the name does not resolve (DNS down)
    out = router.request(invite(1))
    assert [r.status for r in out.replies] == [100]
    failed = router.advance(0.1)
    assert failed.forwarded == []
    assert "failed with 478" in failed.logs  # the failure route sees the local 478
    assert failed.final is not None and failed.final.status == 478
    # within the negative TTL the name is known to fail: t_relay says so at once
    again = router.request(invite(2))
    assert again.final is not None and again.final.status == 500
    assert dns.asked == ["next.example"]
    # the DNS comes back; once the negative entry expired the name is asked again
    dns.answers["next.example"] = "127.0.0.1"
    router.advance(11)
    out = router.request(invite(3))
    assert out.forwarded == []
    later = router.advance(0.1)
    assert [f.dest for f in later.forwarded] == ["udp:127.0.0.1:5090"]
    assert dns.asked == ["next.example", "next.example"]


def test_a_call_canceled_while_its_name_resolves_sends_no_branch(router: Any,
                                                                 dns: SlowDns) -> None:
    dns.answers["next.example"] = "127.0.0.1"
    router.request(invite(1))
    cancel = router.request(invite(1, "CANCEL"))
    assert sorted(r.status for r in cancel.replies) == [200, 487]
    later = router.advance(0.1)
    assert later.forwarded == []


def test_a_branch_route_runs_once_for_a_branch_that_waits_for_its_name(router: Any,
                                                                     dns: SlowDns) -> None:
    dns.answers["next.example"] = "127.0.0.1"
    out = router.request(invite(1, user="moved"))
    assert out.forwarded == [] and [line for line in out.logs if "branch route on" in line] == [
        "<script>: branch route on sip:moved@example.com"]
    later = router.advance(0.1)
    (branch,) = later.forwarded
    assert branch.dest == "udp:127.0.0.1:5090" and branch.msg.header("X-Tagged") == "yes"
    assert "branch route on" not in later.logs
