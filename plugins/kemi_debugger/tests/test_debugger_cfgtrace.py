"""cfgtrace wraps every export and logs each call; off, nothing is wrapped."""

from __future__ import annotations

import logging

import pytest

import kemi_debugger
import kemi_sl
from kemi_core.testing import context, offline_core, request


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


def test_trace_names_the_lua_script_line(tmp_path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    import kemi_engine_lua

    script = tmp_path / "r.lua"
    script.write_text('function ksr_request_route()\n  KSR.info("x")\n  KSR.sl.send_reply(200, "OK")\nend\n')
    core, tr = offline_core(("sl", kemi_sl), ("debugger", kemi_debugger), ("app_lua", kemi_engine_lua),
                            params={("debugger", "cfgtrace"): 1, ("app_lua", "load"): str(script)})
    engine = core.engine_specs["lua"].factory(core)
    engine.load()
    core.engine = engine
    ctx = context(core, request("OPTIONS", "sip:k@127.0.0.1", 5070))
    with caplog.at_level(logging.DEBUG, logger="kemi.cfgtrace"):
        assert core.run_route("ksr_request_route", ctx) == 1
    assert f"KSR.sl.send_reply(200, 'OK') = 1 [{script}:3]" in caplog.text
    assert f"KSR.info('x') = None [{script}:2]" in caplog.text
