"""What the config engines' tests share: the INVITE they route, a recorder of KSR calls, and
the pytest fixtures of their conftests.

An engine's ``tests/conftest.py`` takes the fixtures ``core``, ``calls`` and ``make_ctx`` from
:func:`engine_fixtures` and adds its own ``make_engine``; :func:`script_writer` writes the
script files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kemi_core.api import Core, KemiExport, MsgContext
    from kemi_core.plugins import ModuleLoader

#: The request engine tests route: a plain INVITE from 127.0.0.1:5070.
ENGINE_INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-eng-1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: eng-test-1@127.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)



def engine_reply(status: str = "200 OK") -> bytes:
    """A reply to ENGINE_INVITE with that status line (the callee's To-tag b1)."""
    return (f"SIP/2.0 {status}\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-eng-1\r\n"
            "From: <sip:alice@example.com>;tag=a1\r\n"
            "To: <sip:bob@example.com>;tag=b1\r\n"
            "Call-ID: eng-test-1@127.0.0.1\r\n"
            "CSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n\r\n").encode()

class Calls:
    """Records what test-double exports were called with (and the context they saw)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any, tuple[Any, ...]]] = []

    def rec(self, name: str, ctx: Any, *args: Any) -> None:
        self.log.append((name, ctx, args))

    def names(self) -> list[str]:
        return [n for n, _, _ in self.log]

    def args(self, name: str) -> list[tuple[Any, ...]]:
        return [a for n, _, a in self.log if n == name]

    def export(self, module: str, name: str, params: str = "", result: Any = 1) -> KemiExport:
        """``KSR.<module>.<name>`` taking ``params`` (letters ``i``/``s``): records the call
        under ``name`` and returns ``result``."""
        from kemi_core.api import export

        def func(ctx: Any, *args: Any) -> Any:
            self.rec(name, ctx, *args)
            return result
        return export(module, name, func, params)


# ---- scenarios every engine passes, each with its script in the engine's language -----------

#: The script check_nested_runs runs, in JavaScript (an engine's test writes it in its own):
NESTED_RUNS_JS = """
function ksr_request_route() {
  KSR.t.who("request before");
  var r = KSR.tm.t_relay();
  KSR.t.who("request after " + r);
  return r;
}
function ksr_branch_one() { KSR.t.who("branch"); KSR.x.exit(); KSR.t.who("branch after exit"); }
"""


def check_nested_runs(core: Core, calls: Calls, make_ctx: Callable[[], MsgContext],
                      start: Callable[[], Any]) -> None:
    """tm runs a branch route (``ksr_branch_one``) while ``KSR.tm.t_relay()`` runs in the
    request route: each run sees its own context, the outer one gets its context back, and the
    branch route's ``KSR.x.exit()`` ends that route only. ``start()`` loads the engine with
    the script of NESTED_RUNS_JS (in its language) and returns it."""
    from kemi_core.api import export

    inner_ctx = make_ctx()

    def relay(ctx: Any) -> int:
        calls.rec("relay", ctx)
        return core.run_route("ksr_branch_one", inner_ctx)

    core.registry.add([export("tm", "t_relay", relay, ""), calls.export("t", "who", "s")])
    engine = start()
    outer = make_ctx()
    assert core.run_route("ksr_request_route", outer) == 1  # the branch route's exit counts as 1
    assert calls.log == [
        ("who", outer, ("request before",)),
        ("relay", outer, ()),
        ("who", inner_ctx, ("branch",)),
        ("who", outer, ("request after 1",)),
    ]
    assert engine.ctx is None


#: The script check_error_in_nested_run runs, in JavaScript:
NESTED_ERROR_JS = """
function ksr_request_route() { var r = KSR.tm.t_relay(); KSR.t.mark("after relay " + r); }
function ksr_branch_bad() { throw new Error("branch broke"); }
"""


def check_error_in_nested_run(core: Core, calls: Calls, make_ctx: Callable[[], MsgContext],
                              start: Callable[[], Any]) -> None:
    """A script error in a nested run (``ksr_branch_bad``, run by t_relay) is that run's
    fault (-1 to t_relay); the outer route goes on. ``start()``: see check_nested_runs, with
    the script of NESTED_ERROR_JS."""
    from kemi_core.api import export

    inner_ctx = make_ctx()
    core.registry.add([
        export("tm", "t_relay", lambda ctx: core.run_route("ksr_branch_bad", inner_ctx), ""),
        calls.export("t", "mark", "s"),
    ])
    start()
    outer = make_ctx()
    assert core.run_route("ksr_request_route", outer) == 1
    assert calls.args("mark") == [("after relay -1",)]
    assert inner_ctx.fault is not None and "branch broke" in inner_ctx.fault
    assert outer.fault is None


# ---- building blocks ----------------------------------------------------------------------------

def new_core() -> Core:
    """A Core with the default configuration and nothing loaded."""
    from kemi_core.api import Core, CoreConfig

    return Core(CoreConfig())


def load_plugin(core: Core, name: str, plugin: Any, *params: tuple[str, object]) -> ModuleLoader:
    """A loader with ``plugin`` registered as module ``name`` (its hooks run: params declared,
    RPCs added) and ``params`` set as its modparams; ``init_all()`` runs mod_init."""
    from kemi_core.plugins import ModuleLoader

    loader = ModuleLoader(core, available={})
    loader.register(name, plugin)
    for param, value in params:
        core.set_param(name, param, value)
    return loader


def script_writer(directory: Path, default_name: str) -> Callable[..., str]:
    """``write(text, name=default_name)``: the script file written under ``directory``."""

    def write(text: str, name: str = default_name) -> str:
        path = directory / name
        path.write_text(text)
        return str(path)
    return write


def engine_fixtures() -> tuple[Any, Any, Any]:
    """The fixtures ``core`` (a fresh Core), ``calls`` (a :class:`Calls`) and ``make_ctx``
    (``make_ctx(data=ENGINE_INVITE)``: a fresh context on that core), for an engine's conftest:
    ``core, calls, make_ctx = engine_fixtures()``."""

    @pytest.fixture
    def core() -> Core:
        return new_core()

    @pytest.fixture
    def calls() -> Calls:
        return Calls()

    @pytest.fixture
    def make_ctx(core: Core) -> Callable[..., MsgContext]:
        from kemi_core.testing.capture import context

        def make(data: bytes = ENGINE_INVITE) -> MsgContext:
            return context(core, data)  # received over UDP from 127.0.0.1:5070
        return make

    return core, calls, make_ctx
