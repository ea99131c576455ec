"""The repository's example configs (examples/), unchanged, tested offline with kemi_router:
the same steps a script author would test, for the Lua, native, Python and Python (3s) examples.

The examples name their scripts relative to the repository (as ``make run`` starts them), so
these tests run from there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import invite

REPO = Path(__file__).resolve().parents[2]
CALLEE = "udp:127.0.0.1:5080"

#: example -> (its cfg, the text its log lines say for the request, branch, onreply and failure
#: routes, whether it checks Max-Forwards)
EXAMPLES = {
    "lua": ("examples/lua/kamailio.cfg", "from kamailio lua script", True),
    "native": ("examples/native/kamailio.cfg", "from kamailio native cfg", True),
    "python": ("examples/python/kamailio.cfg", "from kamailio python script", False),
    "python3s": ("examples/python3s/kamailio.cfg", "from kamailio python3s script", True),
}


@pytest.fixture(params=sorted(EXAMPLES))
def example(request: pytest.FixtureRequest, kemi_router: Any,
            monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str, bool]:
    cfg, says, checks_maxfwd = EXAMPLES[request.param]
    monkeypatch.chdir(REPO)
    return kemi_router(cfg), says, checks_maxfwd


def test_relays_to_the_callee_through_the_branch_route(example: tuple[Any, str, bool]) -> None:
    router, says, checks_maxfwd = example
    out = router.request(invite())
    assert [f.dest for f in out.forwarded] == [CALLEE]
    fwd = out.forwarded[0].msg
    assert fwd.method == "INVITE"
    assert fwd.max_forwards == (69 if checks_maxfwd else 70)  # maxfwd decrements, tm does not
    assert [v.branch for v in fwd.vias][1:] == ["z9hG4bKcaller1"]
    assert (fwd.vias[0].host, fwd.vias[0].port) == ("127.0.0.1", 5060)
    assert 100 in [r.status for r in out.replies]
    assert f"===== request - {says}" in out.logs
    assert f"===== branch route - {says}" in out.logs


def test_call_answered_runs_reply_and_onreply_routes(example: tuple[Any, str, bool]) -> None:
    router, says, _ = example
    out = router.request(invite())
    ringing = router.reply(out.forwarded[0], 180, "Ringing")
    assert [(r.status, r.reason) for r in ringing.replies] == [(180, "Ringing")]
    assert f"===== response - {says}" in ringing.logs
    assert "===== onreply route - " in ringing.logs
    ok = router.reply(out.forwarded[0], 200, "OK")
    assert [r.status for r in ok.replies] == [200]
    assert [v.branch for v in ok.replies[0].vias] == ["z9hG4bKcaller1"]


def test_busy_runs_the_failure_route_and_relays_486(example: tuple[Any, str, bool]) -> None:
    router, says, _ = example
    out = router.request(invite())
    busy = router.reply(out.forwarded[0], 486, "Busy Here")
    assert "===== failure route - " in busy.logs
    assert [(r.status, r.reason) for r in busy.replies] == [(486, "Busy Here")]
    assert [a.dest for a in busy.acks] == [CALLEE] and busy.forwarded == []


def test_no_answer_times_out_after_fr_timer(example: tuple[Any, str, bool]) -> None:
    router, says, _ = example
    router.request(invite())
    quiet = router.advance(29.9)  # modparam("tm", "fr_timer", 30000)
    assert quiet.replies == [] and len(quiet.retransmissions) >= 5
    late = router.advance(0.2)
    assert [(r.status, r.reason) for r in late.replies] == [(408, "Request Timeout")]
    assert "===== failure route - " in late.logs


def test_hop_limit(example: tuple[Any, str, bool]) -> None:
    router, _, checks_maxfwd = example
    out = router.request(invite(max_forwards=0))
    if checks_maxfwd:
        assert [(r.status, r.reason) for r in out.replies] == [(483, "Too Many Hops")]
        assert out.forwarded == []
    else:  # the seed's Python example never looks: the request goes on as it came (tm, like
        # Kamailio's, leaves Max-Forwards to the maxfwd module)
        assert [f.msg.max_forwards for f in out.forwarded] == [0]


def test_lua_example_cfgtrace_and_rpc(kemi_router: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Lua example turns cfgtrace on: each KSR call is in out.trace with its script line;
    control commands run against the router's own state."""
    monkeypatch.chdir(REPO)
    router = kemi_router("examples/lua/kamailio.cfg")
    out = router.request(invite())
    script = REPO / "examples" / "lua" / "kamailio.lua"  # the config names it "kamailio.lua"
    assert any(f"KSR.tm.t_relay() = 1 [{script}:22]" in t for t in out.trace)
    stats = router.rpc("tm.stats")
    assert stats["created"] == 1 and stats["current"] == 1
    router.reply(out.forwarded[0], 200)
    assert router.rpc("tm.stats")["2xx"] == 1
