"""maxfwd: add, decrement, zero, limits."""

from __future__ import annotations

import logging
from typing import Any

import pytest

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


# ---- the compiled form (kemi_core.sip.maxfwd_processor) against the function -----------------
MF_LINES = [None, "Max-Forwards: 0", "Max-Forwards: 1", "Max-Forwards: 5", "Max-Forwards: 69",
            "Max-Forwards: 70", "Max-Forwards: 71", "Max-Forwards: 255", "Max-Forwards: 256",
            "Max-Forwards: lots", "Max-Forwards:", "Max-Forwards:  7 ", "Max-Forwards: 007",
            "Max-Forwards: 3\r\nMax-Forwards: 4", "Max-Forwards: -1", "max-forwards: 9"]
LIMITS: list[Any] = [-1, 0, 1, 10, 70, 255, 256, True, False, 1 << 70, "10", 2.0]


@pytest.mark.skipif(kemi_maxfwd.maxfwd_processor is None, reason="_fast not built")
@pytest.mark.parametrize("max_limit", [0, 16, 70, 255])
@pytest.mark.parametrize("line", MF_LINES)
def test_compiled_form_does_what_the_function_does(line: str | None, max_limit: int,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Same results, message bytes, Max-Forwards and log lines, the usual case and every other
    (added, bad header, bad limit, a limit of another type)."""
    assert kemi_maxfwd._process_compiled is not kemi_maxfwd.process_maxfwd

    raw = request("INVITE", "sip:b@127.0.0.1", 5070, max_forwards=None, extra=line or "")

    def outcome(fn: Any, limit: Any) -> tuple[Any, ...]:
        core, _ = offline_core(("maxfwd", kemi_maxfwd), params={("maxfwd", "max_limit"): max_limit})
        ctx = context(core, raw)
        caplog.clear()
        try:
            got: Any = fn(ctx, limit)
        except Exception as exc:  # noqa: BLE001 - compared between the two forms
            got = (type(exc).__name__, str(exc))
        try:
            value: Any = ctx.msg.max_forwards
        except Exception as exc:  # noqa: BLE001 - compared between the two forms
            value = type(exc).__name__
        return got, value, ctx.msg.to_bytes(), [(r.levelname, r.getMessage()) for r in caplog.records]

    with caplog.at_level(logging.DEBUG, logger="kemi.maxfwd"):
        for limit in LIMITS:
            assert outcome(kemi_maxfwd._process_compiled, limit) == outcome(
                kemi_maxfwd.process_maxfwd, limit), limit
    # the reference says what the cases are
    if line == "Max-Forwards: 5":
        assert outcome(kemi_maxfwd.process_maxfwd, 10)[:2] == (1, min(4, max_limit))
    if line == "Max-Forwards: lots":
        assert outcome(kemi_maxfwd.process_maxfwd, 10)[0] == -2


def test_scripts_and_the_cfg_call_the_compiled_form() -> None:
    core, _ = offline_core(("maxfwd", kemi_maxfwd))
    names = {e.name: e.func for e in kemi_maxfwd.exports()}
    assert names["process_maxfwd"] is kemi_maxfwd._process_compiled
    for name in ("mf_process_maxfwd_header", "process_maxfwd"):
        assert core.cfg_functions[name].func is kemi_maxfwd._process_compiled
