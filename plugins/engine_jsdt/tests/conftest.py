"""Fixtures for the app_jsdt tests: a Core, real SIP messages, scripts in tmp_path, engines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kemi_core.api import Core, CoreConfig, MsgContext, RecvInfo
from kemi_engine_jsdt import JsdtEngine, JsdtSettings

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-js-1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@example.com>;tag=a1\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"Call-ID: js-test-1@127.0.0.1\r\n"
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


@pytest.fixture
def core() -> Core:
    return Core(CoreConfig())


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def make_ctx(core: Core) -> Callable[..., MsgContext]:
    from kemi_core.sip import parse_datagram

    def make(data: bytes = INVITE) -> MsgContext:
        rcv = RecvInfo("udp", "127.0.0.1", 5070, "127.0.0.1", 5060)
        return core.new_context(parse_datagram(data), rcv)
    return make


@pytest.fixture
def write_script(tmp_path: Path) -> Callable[..., str]:
    def write(text: str, name: str = "script.js") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


@pytest.fixture
def make_engine(core: Core, write_script: Callable[..., str]) -> Callable[..., JsdtEngine]:
    """An engine running ``text`` (loaded and made the core's engine)."""

    def make(text: str, **kw: Any) -> JsdtEngine:
        engine = JsdtEngine(core, JsdtSettings(script=write_script(text), **kw))
        engine.load()
        core.engine = engine
        return engine
    return make
