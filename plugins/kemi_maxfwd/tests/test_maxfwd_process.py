"""maxfwd: add, decrement, zero, limits."""

from __future__ import annotations

import kemi_maxfwd
from kemi_core.testing import context, offline_core, request


def _ctx(mf: int | None, max_limit: int = 70):  # type: ignore[no-untyped-def]
    core, _ = offline_core(("maxfwd", kemi_maxfwd), params={("maxfwd", "max_limit"): max_limit})
    return context(core, request("INVITE", "sip:b@127.0.0.1", 5070, max_forwards=mf))


def test_missing_header_is_added() -> None:
    ctx = _ctx(None)
    assert kemi_maxfwd.process_maxfwd(ctx, 10) == 2
    assert ctx.msg.max_forwards == 10
    assert b"Max-Forwards: 10\r\n" in ctx.msg.to_bytes()


def test_decrement_and_zero() -> None:
    ctx = _ctx(5)
    assert kemi_maxfwd.process_maxfwd(ctx, 10) == 1
    assert ctx.msg.max_forwards == 4
    assert kemi_maxfwd.process_maxfwd(_ctx(0), 10) == -1


def test_max_limit_caps_the_outgoing_value() -> None:
    ctx = _ctx(70, max_limit=16)
    assert kemi_maxfwd.process_maxfwd(ctx, 10) == 1
    assert ctx.msg.max_forwards == 16


def test_is_maxfwd_lt() -> None:
    assert kemi_maxfwd.is_maxfwd_lt(_ctx(3), 5) == 1
    assert kemi_maxfwd.is_maxfwd_lt(_ctx(9), 5) == -2
    assert kemi_maxfwd.is_maxfwd_lt(_ctx(None), 5) == -1


def test_bad_header_is_an_error_not_an_exception() -> None:
    core, _ = offline_core(("maxfwd", kemi_maxfwd))
    raw = request("INVITE", "sip:b@127.0.0.1", 5070, max_forwards=None, extra="Max-Forwards: lots")
    ctx = context(core, raw)
    assert kemi_maxfwd.process_maxfwd(ctx, 10) == -2
    # no specific internal error: sl_reply_error then answers Kamailio's generic 500
    assert "last_error" not in ctx.extra


def test_limit_out_of_0_to_255_is_an_error() -> None:
    for limit in (-1, -256, 256, 1 << 40):
        ctx = _ctx(5)
        assert kemi_maxfwd.process_maxfwd(ctx, limit) == -2
        assert ctx.msg.max_forwards == 5  # left as it was
    for limit in (0, 255):
        assert kemi_maxfwd.process_maxfwd(_ctx(None), limit) == 2
