"""The legacy app_python objects: Router.Logger and the msg object."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kemi_core.api import CfgFunction, MsgContext

SCRIPT = """\
import Router.Logger as Logger
import Router
import KSR
seen = {}
def mod_init():
    return H()
class H:
    def ksr_request_route(self, msg):
        Logger.LM_INFO("info line\\n")
        Logger.LM_ERR("err line")
        Logger.LM_DBG("dbg line")
        Logger.LM_GEN1(Logger.L_WARN, "gen1 warn")
        Logger.LM_GEN2(Logger.LOG_LOCAL0, Logger.L_CRIT, "gen2 crit")
        seen["levels"] = (Logger.L_ALERT, Logger.L_CRIT, Logger.L_ERR, Logger.L_WARN,
                          Logger.L_NOTICE, Logger.L_INFO, Logger.L_DBG)
        seen["router_logger"] = Router.Logger is Logger
        seen["type"] = msg.Type
        seen["method"] = msg.Method
        seen["ruri"] = msg.RURI
        seen["src"] = msg.src_address
        seen["dst"] = msg.dst_address
        seen["hdr"] = msg.getHeader("X-Test")
        seen["nohdr"] = msg.getHeader("X-Absent")
        msg.rewrite_ruri("sip:carol@127.0.0.1:5090")
        seen["ruri2"] = msg.RURI
        msg.set_dst_uri("sip:127.0.0.1:5099")
        seen["call"] = msg.call_function("pyeng_cfg_double", "404", "Not Here")
        try:
            msg.Status
        except TypeError as exc:
            seen["status_err"] = str(exc)
        return 1
    def ksr_reply_route(self, msg):
        seen["rtype"] = msg.Type
        seen["status"] = msg.Status
        try:
            msg.rewrite_ruri("sip:x@y")
        except TypeError as exc:
            seen["rewrite_err"] = str(exc)
        return 1
"""


def cfg_double(calls: list[tuple[Any, ...]]) -> CfgFunction:
    def fn(ctx: MsgContext, code: int, reason: str) -> int:
        calls.append((ctx, code, reason))
        return 1

    return CfgFunction("pyeng_test", "pyeng_cfg_double", fn, 2, 2, int_params=(0,))


def test_logger_and_msg_on_a_request(pyenv: Any, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[tuple[Any, ...]] = []
    env = pyenv()
    env.core.add_cfg_function(cfg_double(calls))
    env.start(SCRIPT)
    ctx = env.ctx()
    with caplog.at_level(logging.DEBUG, logger="kemi.script"):
        assert env.core.run_route("ksr_request_route", ctx) == 1
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "kemi.script"]
    assert logged == [(logging.INFO, "info line"), (logging.ERROR, "err line"),
                      (logging.DEBUG, "dbg line"), (logging.WARNING, "gen1 warn"),
                      (logging.CRITICAL, "gen2 crit")]
    seen = env.core.engine.image.module.seen
    assert seen["levels"] == (-5, -2, -1, 0, 1, 2, 3)
    assert seen["router_logger"] is True
    assert seen["type"] == "SIP_REQUEST" and seen["method"] == "INVITE"
    assert seen["ruri"] == "sip:bob@example.com"
    assert seen["src"] == ("127.0.0.1", 5070) and seen["dst"] == ("127.0.0.2", 5060)
    assert seen["hdr"] == "hello there" and seen["nohdr"] is None
    assert seen["ruri2"] == "sip:carol@127.0.0.1:5090" == ctx.msg.ruri
    assert ctx.dst_uri == "sip:127.0.0.1:5099"
    assert seen["call"] == 1 and calls == [(ctx, 404, "Not Here")]
    assert "Not a reply" in seen["status_err"]


def test_msg_on_a_reply(pyenv: Any) -> None:
    env = pyenv()
    env.start(SCRIPT)
    assert env.core.run_route("ksr_reply_route", env.reply_ctx()) == 1
    seen = env.core.engine.image.module.seen
    assert seen["rtype"] == "SIP_REPLY" and seen["status"] == "180"
    assert "Not a request" in seen["rewrite_err"]


def test_call_function_errors(pyenv: Any) -> None:
    from kemi_engine_python.legacy import PyMsg

    calls: list[tuple[Any, ...]] = []
    env = pyenv()
    env.core.add_cfg_function(cfg_double(calls))
    env.start(SCRIPT)
    msg = PyMsg(env.ctx())
    with pytest.raises(RuntimeError, match="nope_fn is not found"):
        msg.call_function("nope_fn")
    with pytest.raises(TypeError, match="takes 2 arguments, 1 given"):
        msg.call_function("pyeng_cfg_double", "200")
    with pytest.raises(TypeError, match="argument 2 must be str"):
        msg.call_function("pyeng_cfg_double", "200", 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="argument 1 must be an integer"):
        msg.call_function("pyeng_cfg_double", "abc", "x")
    assert calls == []
