"""KSR.hdr.*, KSR.pv.* and KSR.x.* on real messages."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kemi_core.config.model import CoreConfig
from kemi_core.core_exports import core_exports
from kemi_core.engine import ScriptDrop, ScriptExit
from kemi_core.kemi.registry import KemiRegistry
from kemi_core.runtime.context import MsgContext, RecvInfo
from kemi_core.runtime.core import CfgFunction, Core
from kemi_core.sip import parse_datagram

REGISTRY = KemiRegistry()
REGISTRY.add(core_exports())

MSG = (
    b"MESSAGE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKm1\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bKm0\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: <sip:bob@example.com>\r\n"
    b"From: <sip:alice@atlanta.com>;tag=9\r\n"
    b"Call-ID: msg-1\r\n"
    b"CSeq: 2 MESSAGE\r\n"
    b"X-A: first\r\n"
    b"X-A: second\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 2\r\n\r\nhi"
)


def make_ctx(core: Core | None = None) -> MsgContext:
    core = core or Core(CoreConfig())
    return core.new_context(parse_datagram(MSG), RecvInfo("udp", "10.0.0.1", 5060,
                                                          "127.0.0.1", 5060))


def call(ctx: MsgContext, qname: str, *args: Any) -> Any:
    module, _, name = qname.rpartition(".")
    exp = REGISTRY.lookup(module, name)
    assert exp is not None, qname
    return exp.func(ctx, *args)


def header_names(ctx: MsgContext) -> list[str]:
    return [n for n, _ in ctx.msg.iter_headers()]


# ---- hdr -------------------------------------------------------------------------------------
def test_hdr_append_and_insert() -> None:
    ctx = make_ctx()
    assert call(ctx, "hdr.append", "X-Tail: 1\r\n") == 1
    assert call(ctx, "hdr.insert", "X-Head: 0\r\n") == 1
    names = header_names(ctx)
    assert names[0] == "X-Head" and names[-1] == "X-Tail"
    data = ctx.msg.to_bytes()
    assert b"X-Head: 0\r\n" in data and b"X-Tail: 1\r\n" in data
    assert data.endswith(b"\r\n\r\nhi")


def test_hdr_append_several_lines_and_errors() -> None:
    ctx = make_ctx()
    assert call(ctx, "hdr.append", "X-B: 1\r\nX-C: 2\r\n") == 1
    assert header_names(ctx)[-2:] == ["X-B", "X-C"]
    assert call(ctx, "hdr.append", "no colon here\r\n") == -1
    assert call(ctx, "hdr.append", "") == -1
    assert call(ctx, "hdr.insert", "Bad Name: x") == -1


def test_hdr_after_and_before() -> None:
    ctx = make_ctx()
    assert call(ctx, "hdr.append_after", "X-After: a\r\n", "Call-ID") == 1
    assert call(ctx, "hdr.insert_before", "X-Before: b\r\n", "call-id") == 1
    names = header_names(ctx)
    cid = names.index("Call-ID")
    assert names[cid + 1] == "X-After" and names[cid - 1] == "X-Before"
    # anchor missing: append at the end / insert at the start
    assert call(ctx, "hdr.append_after", "X-End: e\r\n", "X-None") == 1
    assert call(ctx, "hdr.insert_before", "X-Start: s\r\n", "X-None") == 1
    names = header_names(ctx)
    assert names[0] == "X-Start" and names[-1] == "X-End"


def test_hdr_remove_and_presence() -> None:
    ctx = make_ctx()
    assert call(ctx, "hdr.is_present", "X-A") == 1
    assert call(ctx, "hdr.is_present", "x-a") == 1
    assert call(ctx, "hdr.remove", "X-A") == 1
    assert call(ctx, "hdr.is_present", "X-A") == -1
    assert b"X-A" not in ctx.msg.to_bytes()
    assert call(ctx, "hdr.is_present", "i") == 1  # compact Call-ID


def test_hdr_rmappend_rminsert() -> None:
    ctx = make_ctx()
    assert call(ctx, "hdr.rmappend", "X-A", "X-A: replaced\r\n") == 1
    assert ctx.msg.headers("X-A") == ["replaced"]
    assert header_names(ctx)[-1] == "X-A"
    assert call(ctx, "hdr.rminsert", "X-A", "X-A: top\r\n") == 1
    assert header_names(ctx)[0] == "X-A"
    assert ctx.msg.header_count("X-A") == 1
    assert call(ctx, "hdr.rmappend", "X-A", "junk") == -1
    assert ctx.msg.header_count("X-A") == 1  # nothing removed on bad input


def test_hdr_getters() -> None:
    ctx = make_ctx()
    assert call(ctx, "hdr.get", "X-A") == "first"
    assert call(ctx, "hdr.get", "X-None") is None
    assert call(ctx, "hdr.gete", "X-None") == ""
    assert call(ctx, "hdr.getw", "X-None") == "<<null>>"
    assert call(ctx, "hdr.get_idx", "X-A", 1) == "second"
    assert call(ctx, "hdr.get_idx", "X-A", -1) == "second"
    assert call(ctx, "hdr.get_idx", "Via", 1) == "SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bKm0"
    assert call(ctx, "hdr.get_idx", "X-A", 2) is None
    assert call(ctx, "hdr.gete_idx", "X-A", 2) == ""
    assert call(ctx, "hdr.getw_idx", "X-A", 2) == "<<null>>"


def test_hdr_append_to_reply() -> None:
    ctx = make_ctx()
    assert call(ctx, "hdr.append_to_reply", "X-Reason: test\r\n") == 1
    assert call(ctx, "hdr.append_to_reply", "Retry-After: 30") == 1
    assert ctx.extra["reply_headers"] == [("X-Reason", "test"), ("Retry-After", "30")]
    assert b"X-Reason" not in ctx.msg.to_bytes()
    assert call(ctx, "hdr.append_to_reply", "bad") == -1


# ---- pv --------------------------------------------------------------------------------------
def test_pv_get_family() -> None:
    ctx = make_ctx()
    assert call(ctx, "pv.get", "$rm") == "MESSAGE"
    assert call(ctx, "pv.get", "$cs") == 2
    assert call(ctx, "pv.get", "$avp(x)") is None
    assert call(ctx, "pv.gete", "$avp(x)") == ""
    assert call(ctx, "pv.getw", "$avp(x)") == "<<null>>"
    assert call(ctx, "pv.getvn", "$avp(x)", 7) == 7
    assert call(ctx, "pv.getvs", "$avp(x)", "dflt") == "dflt"
    assert call(ctx, "pv.getvs", "$rm", "dflt") == "MESSAGE"
    assert call(ctx, "pv.geti", "$cs") == 2
    assert call(ctx, "pv.geti", "$avp(x)") == 0
    assert call(ctx, "pv.geti", "$rm") == 0


def test_pv_set_family() -> None:
    core = Core(CoreConfig())
    ctx = make_ctx(core)
    call(ctx, "pv.sets", "$var(x)", "kamailio")
    call(ctx, "pv.seti", "$avp(n)", 10)
    assert core.script_vars["x"] == "kamailio"
    assert call(ctx, "pv.get", "$avp(n)") == 10
    assert call(ctx, "pv.is_null", "$avp(n)") is False
    call(ctx, "pv.unset", "$avp(n)")
    assert call(ctx, "pv.is_null", "$avp(n)") is True
    call(ctx, "pv.sets", "$ru", "sip:new@10.0.0.4")
    assert ctx.msg.ruri == "sip:new@10.0.0.4"
    call(ctx, "pv.sets", "$du", "sip:10.0.0.5:5070")
    assert ctx.dst_uri == "sip:10.0.0.5:5070"
    call(ctx, "pv.unset", "$du")
    assert ctx.dst_uri is None


def test_pv_errors_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    ctx = make_ctx()
    caplog.set_level(logging.ERROR, logger="kemi.script")
    assert call(ctx, "pv.get", "$nosuch") is None
    call(ctx, "pv.sets", "$ci", "readonly")
    assert ctx.msg.call_id == "msg-1"
    assert call(ctx, "pv.is_null", "$bad(") is False
    call(ctx, "pv.sets", "$du", "sip:10.0.0.5")
    for _ in range(2):  # the second time through the remembered setter
        call(ctx, "pv.sets", "$du", "not a uri")
    assert ctx.dst_uri == "sip:10.0.0.5"
    call(ctx, "pv.sets", "$(var(x){s.len})", "a")  # transforms: read-only
    messages = [r.getMessage() for r in caplog.records]
    assert any("$nosuch" in m for m in messages)
    assert any("unable to set pv [$ci]" in m for m in messages)
    assert sum("unable to set pv [$du]: invalid URI" in m for m in messages) == 2
    assert any("unable to set pv [$(var(x){s.len})]" in m for m in messages)


# ---- x ---------------------------------------------------------------------------------------
def test_x_exit_and_drop() -> None:
    ctx = make_ctx()
    with pytest.raises(ScriptExit):
        call(ctx, "x.exit")
    assert ctx.dropped is False
    with pytest.raises(ScriptDrop):
        call(ctx, "x.drop")
    assert ctx.dropped is True


def test_set_drop_does_not_stop() -> None:
    ctx = make_ctx()
    assert call(ctx, "set_drop") is None
    assert ctx.dropped is True


def test_x_modf_calls_cfg_function() -> None:
    core = Core(CoreConfig())
    seen: list[tuple[Any, ...]] = []

    def sl_send_reply(ctx: MsgContext, code: int, reason: str) -> int:
        seen.append((code, reason))
        return 1

    core.add_cfg_function(CfgFunction("sl", "sl_send_reply", sl_send_reply, 2, 2, (0,)))
    ctx = make_ctx(core)
    assert call(ctx, "x.modf", "sl_send_reply", "404", "Not Here") == 1
    assert seen == [(404, "Not Here")]
    assert call(ctx, "x.modf", "sl_send_reply", "404") == -1  # too few
    assert call(ctx, "x.modf", "sl_send_reply", "abc", "x") == -1  # not an int
    assert call(ctx, "x.modf", "no_such_function") == -1
    assert len(seen) == 1
