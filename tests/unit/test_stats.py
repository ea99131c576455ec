"""Kamailio's statistics on core.counter: what the core counts, the stats.* RPCs, /metrics."""

from __future__ import annotations

import re

import pytest

from kemi_core.metrics import ProcessSample, metric_name, render
from kemi_core.metrics_http import answer
from kemi_core.rpc.protocol import RpcFault
from kemi_core.stats import prometheus_text, select, snapshot
from kemi_core.testing.capture import offline_core


@pytest.fixture
def core():  # type: ignore[no-untyped-def]
    core, _ = offline_core()
    return core


def _rpc(core, name, *params):  # type: ignore[no-untyped-def]
    return core.rpc_commands[name].func(core, list(params))


def test_requests_and_replies_counted_under_kamailio_names(core) -> None:  # type: ignore[no-untyped-def]
    stats = core.stats
    for method in ("INVITE", "ACK", "OPTIONS", "FOO"):
        stats.request(method)
    stats.reply(180, "INVITE")
    stats.reply(486, "INVITE")
    stats.reply(200, "REGISTER")
    stats.reply(200, None)  # a CSeq that did not parse: the class still counts
    stats.sent(b"SIP/2.0 100 Trying\r\n")
    stats.sent(b"INVITE sip:x SIP/2.0\r\n")
    lines = _rpc(core, "stats.get_statistics", "all")
    got = {line.split(" = ")[0]: int(line.split(" = ")[1]) for line in lines}
    assert {k: v for k, v in got.items() if v} == {
        "core:rcv_requests": 4, "core:rcv_requests_invite": 1, "core:rcv_requests_ack": 1,
        "core:rcv_requests_options": 1, "core:unsupported_methods": 1,
        "core:rcv_replies": 4, "core:rcv_replies_1xx": 1, "core:rcv_replies_18x": 1,
        "core:rcv_replies_1xx_invite": 1, "core:rcv_replies_4xx": 1, "core:rcv_replies_486": 1,
        "core:rcv_replies_4xx_invite": 1, "core:rcv_replies_2xx": 2, "core:rcv_replies_2xx_reg": 1,
        "kemi:sent_replies": 1, "kemi:sent_replies_1xx": 1, "kemi:sent_requests": 1}
    assert lines == sorted(lines, key=lambda x: tuple(x.split(" = ")[0].split(":")))
    assert all(re.fullmatch(r"\w+:\w+ = \d+", line) for line in lines)


def test_reply_class_totals_are_sums_of_their_methods(core) -> None:  # type: ignore[no-untyped-def]
    stats = core.stats
    for _ in range(2):  # the second time from the counters kept per (status, method)
        stats.reply(200, "INVITE")
        stats.reply(202, "NOTIFY")  # a method not counted by name: the class alone
        stats.reply(183, "INVITE")
    assert (stats.reply_class_method[(2, "INVITE")].value, stats.reply_class[1].value,
            stats.reply_18x.value, stats.reply_class[0].value, stats.rcv_replies.value) == (
            2, 4, 2, 2, 6)
    assert _rpc(core, "stats.reset_statistics", "rcv_replies_2xx_invite") is None
    # a member's reset leaves its totals alone, as with counters of their own
    assert (stats.reply_class_method[(2, "INVITE")].value, stats.reply_class[1].value,
            stats.rcv_replies.value) == (0, 4, 6)
    assert _rpc(core, "stats.reset_statistics", "rcv_replies_2xx") is None
    stats.reply(200, "BYE")
    assert (stats.reply_class[1].value, stats.rcv_replies.value) == (1, 7)


def test_selection_reset_and_clear_as_kamailio(core) -> None:  # type: ignore[no-untyped-def]
    core.stats.request("OPTIONS")
    core.stats.request("OPTIONS")
    assert _rpc(core, "stats.get_statistics", "rcv_requests_options") == [
        "core:rcv_requests_options = 2"]
    assert _rpc(core, "stats.get_statistics", "core:rcv_requests", "nosuch") == [
        "core:rcv_requests = 2"]
    assert len(_rpc(core, "stats.get_statistics", "kemi:")) == len(select(core, ["kemi:"])) > 5
    with pytest.raises(RpcFault) as info:
        _rpc(core, "stats.get_statistics")
    assert (info.value.code, info.value.message) == (400, "Please provide which stats to retrieve")
    assert _rpc(core, "stats.clear_statistics", "rcv_requests_options", "rcv_requests_bye") == [
        "core:rcv_requests_bye = 0", "core:rcv_requests_options = 0 (2)"]
    assert core.stats.request_by_method["OPTIONS"].value == 0
    assert _rpc(core, "stats.reset_statistics", "core:") is None
    assert core.stats.rcv_requests.value == 0
    core.stats.request("BYE")  # counting goes on after a reset
    assert _rpc(core, "stats.fetchn", "rcv_requests") == {"core.rcv_requests": 1}
    assert _rpc(core, "stats.fetch", "rcv_requests") == {"core.rcv_requests": "1"}
    snap = snapshot(core)
    assert snap["statistics"]["core:rcv_requests_bye"] == 1
    assert snap["processes"][0]["rank"] == 0 and snap["processes"][0]["role"] == "main"


def test_prometheus_text(core) -> None:  # type: ignore[no-untyped-def]
    core.stats.request("INVITE")
    text = prometheus_text(core, "core:", "kamailio_")
    assert "# TYPE kamailio_core_rcv_requests counter\nkamailio_core_rcv_requests 1\n" in text
    assert "kamailio_sl_" not in text and 'kamailio_process_cpu_seconds_total{rank="0",role="main"}' in text
    assert prometheus_text(core, "", "x_").startswith("# HELP x_process_cpu_seconds_total")
    every = prometheus_text(core, "all", "")
    assert "\nkemi_sent_replies 0\n" in every
    for line in every.splitlines():  # the exposition format's grammar, line by line
        assert re.fullmatch(r"# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+|"
                            r'[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_]\w*="[^"]*"(,[a-zA-Z_]\w*="[^"]*")*\})? '
                            r"-?[0-9.]+", line), line
    assert metric_name("kamailio_", "my-mod", "a.b") == "kamailio_my_mod_a_b"
    assert metric_name("", "2g", "x") == "_2g_x"
    out = render([], "k_", [ProcessSample(1, 42, "wor\"ker", 1.5, 2)])
    assert 'k_process_restarts_total{rank="1",role="wor\\"ker"} 2' in out


def test_http_answers() -> None:
    ok = answer(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", lambda: "a 1\n")
    assert ok.startswith(b"HTTP/1.1 200 OK\r\n") and ok.endswith(b"\r\n\r\na 1\n")
    assert b"Content-Type: text/plain; version=0.0.4" in ok and b"Content-Length: 4\r\n" in ok
    head = answer(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n", lambda: "a 1\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and head.endswith(b"\r\n\r\n")
    assert answer(b"GET / HTTP/1.1\r\n\r\n", lambda: "").startswith(b"HTTP/1.1 404")
    assert answer(b"POST /metrics HTTP/1.1\r\n\r\n", lambda: "").startswith(b"HTTP/1.1 405")
    assert answer(b"garbage\r\n\r\n", lambda: "").startswith(b"HTTP/1.1 400")
    assert answer(b"GET /metrics SPDY/3\r\n\r\n", lambda: "").startswith(b"HTTP/1.1 505")

    def broken() -> str:
        raise RuntimeError("x")

    assert answer(b"GET /metrics HTTP/1.1\r\n\r\n", broken).startswith(b"HTTP/1.1 500")
