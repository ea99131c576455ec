"""app_python3s: function-style scripts (callbacks take no msg argument)."""

from __future__ import annotations

from typing import Any

import pytest

from kemi_core.api import MsgContext, ScriptError, export

SCRIPT = """\
import KSR
log = []
def ksr_script_init():
    log.append("init")
def ksr_script_child_init(rank):
    log.append(("child", rank))
def ksr_request_route():
    log.append(("req", KSR.t.method()))
    KSR.app_python3s.exec_p1("helper", "p")
    return 2
def ksr_reply_route():
    log.append("reply")
def helper(arg):
    log.append(("helper", arg))
"""


def method_export() -> Any:
    def method(ctx: MsgContext) -> str:
        return ctx.msg.method

    return export("t", "method", method, "", "xval")


def test_function_style_callbacks_and_inits(pyenv: Any) -> None:
    env = pyenv("app_python3s")
    env.start(SCRIPT, [method_export()])
    log = env.core.engine.image.module.log
    assert log == ["init"]
    env.loader.child_init_all(4)
    assert env.core.run_route("ksr_request_route", env.ctx()) == 2
    assert env.core.run_route("ksr_reply_route", env.reply_ctx()) == 1
    assert log == ["init", ("child", 4), ("req", "INVITE"), ("helper", "p"), "reply"]
    assert "app_python3s.reload" in env.core.rpc_commands
    assert "app_python.reload" in env.core.rpc_commands


def test_function_style_needs_ksr_request_route(pyenv: Any) -> None:
    env = pyenv("app_python3s")
    with pytest.raises(ScriptError, match=r"defines no function ksr_request_route\(\)"):
        env.start("def ksr_reply_route():\n    pass\n")


def test_explicit_init_name_must_exist(pyenv: Any) -> None:
    env = pyenv("app_python3s")
    with pytest.raises(ScriptError, match=r"no function my_init\(\)"):
        env.start("def ksr_request_route():\n    pass\n", params={"script_init": "my_init"})
