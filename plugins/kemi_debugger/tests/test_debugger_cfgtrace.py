"""cfgtrace wraps every export and logs each call; off, nothing is wrapped."""

from __future__ import annotations

import logging

import pytest

import kemi_debugger
import kemi_sl
from kemi_core.testing.capture import context, offline_core
from kemi_core.testing.udp_client import request


def test_trace_logs_calls_with_args_and_result(caplog: pytest.LogCaptureFixture) -> None:
    core, tr = offline_core(("sl", kemi_sl), ("debugger", kemi_debugger),
                            params={("debugger", "cfgtrace"): 1})
    exp = core.registry.lookup("sl", "send_reply")
    assert exp is not None
    ctx = context(core, request("OPTIONS", "sip:k@127.0.0.1", 5070))
    with caplog.at_level(logging.DEBUG, logger="kemi.cfgtrace"):
        assert exp.func(ctx, 200, "OK") == 1
    assert "KSR.sl.send_reply(200, 'OK') = 1" in caplog.text
    assert len(tr.sent) == 1


def test_off_leaves_exports_untouched() -> None:
    core, _ = offline_core(("sl", kemi_sl), ("debugger", kemi_debugger))
    exp = core.registry.lookup("sl", "send_reply")
    assert exp is not None and exp.func is kemi_sl.send_reply
