"""Running routes: results, exit/drop/sys.exit, script errors, missing callbacks, init."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kemi_core.api import (
    ConfigError,
    ModuleError,
    MsgContext,
    ReturnKind,
    ScriptDrop,
    ScriptError,
    ScriptExit,
    export,
)

HEAD = """\
import sys
import KSR
def mod_init():
    return H()
class H:
"""


def mark_exports(marks: list[str]) -> list[Any]:
    def mark(ctx: MsgContext, text: str) -> int:
        marks.append(text)
        return 1

    def exit_double(ctx: MsgContext) -> None:
        raise ScriptExit()

    def drop_double(ctx: MsgContext) -> None:
        raise ScriptDrop()

    # Test doubles for core_exports' KSR.x.exit / KSR.x.drop (they raise the core's exceptions).
    return [export("t", "mark", mark, "s"),
            export("x", "exit", exit_double, "", ReturnKind.NONE),
            export("x", "drop", drop_double, "", ReturnKind.NONE)]


@pytest.mark.parametrize(("body", "expected"), [
    ("return 1", 1), ("return -3", -3), ("return None", 1), ("pass", 1), ("return True", 1),
    ("return False", -1), ("return 0", 0),
])
def test_route_results(pyenv: Any, body: str, expected: int) -> None:
    env = pyenv()
    env.start(HEAD + f"    def ksr_request_route(self, msg):\n        {body}\n")
    assert env.core.run_route("ksr_request_route", env.ctx()) == expected


@pytest.mark.parametrize(("stop", "result", "dropped"), [
    ("KSR.x.exit()", 1, False), ("KSR.x.drop()", 0, True), ("sys.exit()", 1, False),
    ("sys.exit(3)", 1, False),
])
def test_exit_drop_and_sys_exit_end_the_route(pyenv: Any, stop: str, result: int,
                                              dropped: bool) -> None:
    marks: list[str] = []
    env = pyenv()
    env.start(HEAD + f"""\
    def ksr_request_route(self, msg):
        KSR.t.mark("before")
        {stop}
        KSR.t.mark("after")
        return 5
""", mark_exports(marks))
    ctx = env.ctx()
    assert env.core.run_route("ksr_request_route", ctx) == result
    assert marks == ["before"]
    assert ctx.dropped is dropped
    # The worker goes on: the next message runs normally.
    assert env.core.run_route("ksr_request_route", env.ctx()) == result
    assert marks == ["before", "before"]


def test_exception_is_logged_with_script_line_and_returns_minus_one(
        pyenv: Any, caplog: pytest.LogCaptureFixture) -> None:
    env = pyenv()
    path = env.write(HEAD + """\
    def ksr_request_route(self, msg):
        x = 1
        return x / 0
""")
    env.start(path)
    ctx = env.ctx()
    with caplog.at_level(logging.ERROR, logger="kemi.script"):
        assert env.core.run_route("ksr_request_route", ctx) == -1
    rec = next(r for r in caplog.records if r.name == "kemi.script")
    assert f"{path}:8" in rec.getMessage()
    assert "ZeroDivisionError" in rec.getMessage()
    # One line in the log; the exception rides along for test fixtures (their traceback).
    assert rec.exc_info is None and isinstance(rec.kemi_exception, ZeroDivisionError)
    assert ctx.fault.startswith(f"{path}:8")
    assert env.module.get_state().cur[0] is None
    assert env.core.run_route("ksr_request_route", env.ctx()) == -1  # and again: the worker goes on


def test_ksr_kind_error_is_a_script_error_at_the_calling_line(
        pyenv: Any, caplog: pytest.LogCaptureFixture) -> None:
    env = pyenv()
    path = env.write(HEAD + """\
    def ksr_request_route(self, msg):
        KSR.t.mark(42)
""")
    env.start(path, mark_exports([]))
    with caplog.at_level(logging.ERROR, logger="kemi.script"):
        assert env.core.run_route("ksr_request_route", env.ctx()) == -1
    text = caplog.records[-1].getMessage()
    assert f"{path}:7" in text and "KSR.t.mark(str text) -> int: argument 1 must be str" in text


def test_missing_request_route_is_refused_at_load(pyenv: Any) -> None:
    env = pyenv()
    with pytest.raises(ScriptError, match=r"has no method ksr_request_route\(self, msg\)"):
        env.start(HEAD + "    def ksr_reply_route(self, msg):\n        return 1\n")


def test_mod_init_returning_none_or_missing_is_refused(pyenv: Any) -> None:
    env = pyenv()
    with pytest.raises(ScriptError, match=r"mod_init\(\) returned None"):
        env.start("def mod_init():\n    pass\n")
    env2 = pyenv()
    with pytest.raises(ScriptError, match=r"no function mod_init\(\)"):
        env2.start(env.write("x = 1\n", "other.py"))


def test_syntax_error_and_import_error_carry_file_and_line(pyenv: Any) -> None:
    env = pyenv()
    path = env.write("def mod_init():\n    return (\n\nclass\n", "bad.py")
    with pytest.raises(ScriptError, match=rf"{path}:\d+: the Python script failed to load: SyntaxError"):
        env.start(path)
    env = pyenv()
    path = env.write("import KSR\n\nKSR.nothing_here()\n", "bad2.py")
    with pytest.raises(ScriptError, match=rf"{path}:3: .*AttributeError"):
        env.start(path)


def test_missing_named_callback_is_logged_loudly_and_raises(
        pyenv: Any, caplog: pytest.LogCaptureFixture) -> None:
    env = pyenv()
    engine = env.start(HEAD + "    def ksr_request_route(self, msg):\n        return 1\n")
    assert engine.has_route("ksr_request_route")
    assert not engine.has_route("ksr_branch_route_nope")
    ctx = env.ctx()
    with caplog.at_level(logging.ERROR, logger="kemi.script"):
        assert env.core.run_route("ksr_branch_route_nope", ctx) == -1
    assert ctx.fault is not None and "ksr_branch_route_nope" in ctx.fault
    assert any("ksr_branch_route_nope" in r.getMessage() and r.levelno == logging.ERROR
               for r in caplog.records)


def test_child_init_runs_once_per_process_with_the_rank(pyenv: Any) -> None:
    env = pyenv()
    env.start(HEAD + """\
    ranks = []
    def child_init(self, rank):
        self.ranks.append(rank)
        return 0
    def ksr_request_route(self, msg):
        return 1
""")
    env.loader.child_init_all(3)
    env.core.run_route("ksr_request_route", env.ctx())
    env.core.run_route("ksr_request_route", env.ctx())
    assert env.core.engine.image.target.ranks == [3]


def test_child_init_is_lazy_when_no_hook_ran(pyenv: Any) -> None:
    env = pyenv()
    env.core.worker_rank = 2
    env.start(HEAD + """\
    ranks = []
    def child_init(self, rank):
        self.ranks.append(rank)
    def ksr_request_route(self, msg):
        return 1
""")
    assert env.core.engine.image.target.ranks == []
    env.core.run_route("ksr_request_route", env.ctx())
    env.core.run_route("ksr_request_route", env.ctx())
    assert env.core.engine.image.target.ranks == [2]


def test_custom_init_names_and_load_alias(pyenv: Any) -> None:
    env = pyenv()
    path = env.write("""\
        class R:
            def __init__(self):
                self.ranks = []
            def start_worker(self, rank):
                self.ranks.append(rank)
            def ksr_request_route(self, msg):
                return 7
        def make_handler():
            return R()
        """)
    env.core.set_param("app_python", "load", str(path))
    env.start(env.write("raise RuntimeError('script_name is not used')\n", "unused.py"),
                       params={"mod_init_function": "make_handler",
                               "child_init_method": "start_worker"})
    assert env.core.run_route("ksr_request_route", env.ctx()) == 7
    assert env.core.engine.image.target.ranks == [0]


def test_sibling_modules_import(pyenv: Any) -> None:
    env = pyenv()
    env.write("def answer():\n    return 42\n", "pyeng_sibling_helper.py")
    env.start(HEAD.replace("import KSR\n", "import KSR\nimport pyeng_sibling_helper\n")
                       + "    def ksr_request_route(self, msg):\n"
                         "        return pyeng_sibling_helper.answer()\n")
    assert env.core.run_route("ksr_request_route", env.ctx()) == 42


def test_a_missing_script_is_refused_at_its_modparam(pyenv: Any, tmp_path: Any) -> None:
    env = pyenv()
    for param in ("script_name", "load"):
        with pytest.raises(ConfigError, match=rf"^k.cfg:3: app_python.{param}: file .*nope.py not"):
            env.core.set_param("app_python", param, str(tmp_path / "nope.py"), "k.cfg", 3)


def test_mod_init_refuses_a_script_gone_since_or_none(pyenv: Any, tmp_path: Any) -> None:
    env = pyenv()
    script = tmp_path / "gone.py"
    script.write_text("")
    env.core.set_param("app_python", "script_name", str(script))
    script.unlink()
    with pytest.raises(ModuleError, match="does not exist"):
        env.loader.init_all()
    env = pyenv()
    with pytest.raises(ModuleError, match="no script given"):
        env.loader.init_all()


def test_two_python_variants_cannot_both_load(pyenv: Any) -> None:
    from kemi_core.api import ConfigError
    from kemi_engine_python.modules import PythonEngineModule

    env = pyenv()
    with pytest.raises(ConfigError, match="both provide"):
        env.loader.register("app_python3", PythonEngineModule("app_python3"))


def test_a_callback_that_is_no_function_or_raises_type_error_is_told_apart(
        pyenv: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A missing callback is found out only when calling it failed (the route run's fast
    path): a callback that is not callable is still "not defined", while a TypeError raised
    inside a callback is the script's error at its line."""
    env = pyenv()
    path = env.write(HEAD + """\
    ksr_reply_route = 5
    def ksr_request_route(self, msg):
        return len(5)
""")
    engine = env.start(path)
    assert not engine.has_route("ksr_reply_route")
    with caplog.at_level(logging.ERROR, logger="kemi.script"):
        ctx = env.ctx()
        assert env.core.run_route("ksr_reply_route", ctx) == -1
        assert "callback ksr_reply_route is not defined" in ctx.fault
        ctx = env.ctx()
        assert env.core.run_route("ksr_request_route", ctx) == -1
    assert ctx.fault.startswith(f"{path}:8: error in ksr_request_route(): TypeError")
    assert env.module.get_state().cur[0] is None


def test_callbacks_get_a_msg_of_their_own_and_event_arguments(pyenv: Any) -> None:
    """Each run hands the callback a new msg object wrapping its context (made without
    PyMsg's __init__), and an event callback gets its event name after it."""
    from kemi_engine_python.legacy import PyMsg

    env = pyenv()
    env.start(HEAD + """\
    seen = []
    def ksr_request_route(self, msg):
        self.seen.append((msg, msg.ctx))
        return 1
    def on_event(self, msg, evname):
        self.seen.append((msg, evname))
        return 2
""")
    ctx1, ctx2 = env.ctx(), env.ctx()
    assert env.core.run_route("ksr_request_route", ctx1) == 1
    assert env.core.run_route("ksr_request_route", ctx2) == 1
    assert env.core.run_event_route("xhttp:request", ctx1, "on_event") == 2
    seen = env.core.engine.image.target.seen
    assert [type(m) for m, _ in seen] == [PyMsg] * 3
    assert seen[0][1] is ctx1 and seen[1][1] is ctx2 and seen[0][0] is not seen[1][0]
    assert seen[2][0].ctx is ctx1 and seen[2][1] == "xhttp:request"


def test_exec_runs_the_script_when_python_is_not_the_cfgengine(
        pyenv: Any, caplog: pytest.LogCaptureFixture) -> None:
    """app_python.exec with another cfgengine: the module imports the script for exec alone
    (once), runs no per-worker init for it, and gives each run KSR's context and a msg."""
    marks: list[str] = []
    env = pyenv()
    path = env.write(HEAD + """\
    calls = []
    def child_init(self, rank):
        self.calls.append(("child", rank))
    def ksr_request_route(self, msg):
        return 1
    def helper(self, msg, *args):
        KSR.t.mark(msg.Method)  # KSR reads the context of the exec
        self.calls.append(("helper", args))
        return 1
    def broken(self, msg):
        return 1 / 0
""")
    env.start(path, mark_exports(marks), load=False)
    env.core.engine = None  # another engine (native, Lua ...) routes the messages
    module, ctx = env.module, env.ctx()
    assert module.ksr_exec(ctx, "helper") == 1
    assert module.ksr_exec_p1(ctx, "helper", "p") == 1
    engine = module.get_state().exec_engine
    assert engine is not None and engine.image is not None
    assert engine.image.target.calls == [("helper", ()), ("helper", ("p",))]
    assert marks == ["INVITE", "INVITE"]
    assert module.get_state().cur[0] is None
    with caplog.at_level(logging.ERROR, logger="kemi.script"):
        assert module.ksr_exec(ctx, "broken") == -1
    assert "ZeroDivisionError" in caplog.text
    with pytest.raises(ScriptError, match="app_python exec: the script has no nosuch"):
        module.ksr_exec(ctx, "nosuch")
    assert module.get_state().exec_engine is engine  # imported once
