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


def new_core() -> Core:
    """A Core with the default configuration and nothing loaded."""
    from kemi_core.api import Core, CoreConfig

    return Core(CoreConfig())


def new_context(core: Core, data: bytes = ENGINE_INVITE) -> MsgContext:
    """``data`` parsed into the context of a message received over UDP from 127.0.0.1:5070."""
    from kemi_core.api import RecvInfo
    from kemi_core.sip import parse_datagram

    rcv = RecvInfo("udp", "127.0.0.1", 5070, "127.0.0.1", 5060)
    return core.new_context(parse_datagram(data), rcv)


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
        def make(data: bytes = ENGINE_INVITE) -> MsgContext:
            return new_context(core, data)
        return make

    return core, calls, make_ctx
