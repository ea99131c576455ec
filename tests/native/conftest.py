"""Shared fixtures for the native engine tests: a Core with test cfg functions and messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kemi_core.config.model import CoreConfig, ListenAddr, RouteBlock
from kemi_core.native import NativeEngine
from kemi_core.runtime.context import MsgContext, RecvInfo
from kemi_core.runtime.core import CfgFunction, Core
from kemi_core.sip import parse_datagram

INVITE = (
    "INVITE sip:bob@127.0.0.1:5060;transport=udp SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK-1\r\n"
    "From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
    "To: <sip:bob@127.0.0.1>\r\n"
    "Call-ID: call-1@10.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Max-Forwards: 70\r\n"
    "User-Agent: tester\r\n"
    "Content-Length: 0\r\n\r\n"
)
REPLY_200 = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-2\r\n"
    "From: <sip:alice@example.com>;tag=a1\r\n"
    "To: <sip:bob@127.0.0.1>;tag=b1\r\n"
    "Call-ID: call-1@10.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Content-Length: 0\r\n\r\n"
)


class Recorder:
    """Test cfg functions: each call is recorded as (name, args)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def fn(self, name: str, result: int | Callable[..., int] = 1) -> Callable[..., int]:
        def call(ctx: MsgContext, *args: Any) -> int:
            self.calls.append((name, args))
            return result(ctx, *args) if callable(result) else result
        return call

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def core(rec: Recorder) -> Core:
    c = Core(CoreConfig(listen=[ListenAddr("udp", "127.0.0.1", 5060)]))
    add = c.add_cfg_function
    add(CfgFunction("sl", "sl_send_reply", rec.fn("sl_send_reply"), 2, 2, (0,)))
    add(CfgFunction("textops", "is_method", rec.fn(
        "is_method", lambda ctx, m: 1 if ctx.msg.method in m.split("|") else -1), 1, 1))
    add(CfgFunction("test", "ret", rec.fn("ret", lambda ctx, v: v), 1, 1, (0,)))
    add(CfgFunction("test", "mark", rec.fn("mark"), 0, 3))
    add(CfgFunction("test", "boom", rec.fn("boom", lambda ctx: 1 // 0), 0, 0))
    add(CfgFunction("test", "true_fn", rec.fn("true_fn", lambda ctx: True), 0, 0))
    add(CfgFunction("test", "false_fn", rec.fn("false_fn", lambda ctx: False), 0, 0))
    add(CfgFunction("tm", "t_relay", rec.fn("t_relay"), 0, 2))
    return c


class Helper:
    """Builds blocks, engines and contexts for one test's core."""

    INVITE = INVITE
    REPLY_200 = REPLY_200

    def __init__(self, core: Core, rec: Recorder) -> None:
        self.core = core
        self.rec = rec

    def ctx(self, raw: str = INVITE, src: str = "10.0.0.1", proto: str = "udp") -> MsgContext:
        return self.core.new_context(parse_datagram(raw.encode()),
                                     RecvInfo(proto, src, 5062, "127.0.0.1", 5060))

    @staticmethod
    def block(body: str, kind: str = "request_route", name: str | None = None, line: int = 1,
              file: str = "test.cfg", column: int = 1) -> RouteBlock:
        return RouteBlock(file=file, line=line, kind=kind, name=name, body=body, body_line=line,
                          body_column=column)

    def engine(self, *blocks: RouteBlock) -> NativeEngine:
        eng = NativeEngine(self.core, list(blocks))
        eng.load()
        return eng

    def run(self, body: str, *more: RouteBlock, raw: str = INVITE,
            **ctx_kw: Any) -> tuple[int, MsgContext]:
        self.core.engine = self.engine(self.block(body), *more)
        ctx = self.ctx(raw, **ctx_kw)
        return self.core.run_route("ksr_request_route", ctx), ctx  # the core's contract


@pytest.fixture
def h(core: Core, rec: Recorder) -> Helper:
    return Helper(core, rec)
