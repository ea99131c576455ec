"""KSR.pv.get and KSR.pv.is_null compiled (kemi_core.sip.pv_reader) against their Python forms
(kemi_core.core_exports.pv.get / is_null), the reference: the same values, the same log lines
and the same context state, on known, unknown and malformed names and other argument types."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kemi_core.core_exports import pv
from kemi_core.testing import context, offline_core, request

pytestmark = pytest.mark.skipif(pv.pv_reader is None, reason="_fast not built or KEMI_SIP_PURE")

NAMES: list[Any] = ["$tt", "$ft", "$fd", "$fu", "$ru", "$rm", "$si", "$sp", "$ci", "$du",
                    "$var(x)", "$var(unset)", "$(hdr(Via)[0])", "$hdr(X-None)", "$null",
                    "$fu{s.len}", "$nosuch", "$(bad", "", "tt", "$tt ", 7, None, b"$tt"]
MESSAGES = [request("INVITE", "sip:bob@127.0.0.1", 5070),
            request("BYE", "sip:bob@127.0.0.1", 5070, extra="X-A: 1").replace(
                b"To: <sip:bob@127.0.0.1>", b"To: <sip:bob@127.0.0.1>;tag=b1"),
            request("OPTIONS", "sip:127.0.0.1", 5070).replace(b"From: <", b"From: bad <")]


def _outcome(fn: Any, data: bytes, name: Any, caplog: pytest.LogCaptureFixture) -> tuple[Any, ...]:
    core, _ = offline_core()
    ctx = context(core, data)
    core.pv.set(ctx, "$var(x)", "ex")
    caplog.clear()
    try:
        got: Any = fn(ctx, name)
        got = (type(got).__name__, got)
    except Exception as exc:  # noqa: BLE001 - compared between the two forms
        got = (type(exc).__name__, str(exc))
    return got, dict(ctx.extra), [(r.name, r.levelname, r.getMessage()) for r in caplog.records]


@pytest.mark.parametrize("data", MESSAGES, ids=["invite", "bye", "bad_from"])
def test_compiled_reads_give_what_the_functions_give(data: bytes,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    assert pv._get_compiled is not pv.get and pv._is_null_compiled is not pv.is_null
    with caplog.at_level(logging.DEBUG):
        for name in NAMES:
            for compiled, pure in ((pv._get_compiled, pv.get), (pv._is_null_compiled, pv.is_null)):
                assert _outcome(compiled, data, name, caplog) == _outcome(pure, data, name,
                                                                          caplog), name
    # the reference says what the cases are
    assert _outcome(pv.get, data, "$var(x)", caplog)[0] == ("str", "ex")
    assert _outcome(pv.is_null, data, "$nosuch", caplog)[2] != []  # logged, False
    assert _outcome(pv.is_null, data, "$tt", caplog)[0] == ("bool", data is not MESSAGES[1])


def test_scripts_call_the_compiled_forms() -> None:
    funcs = {e.name: e.func for e in pv.exports()}
    assert funcs["get"] is pv._get_compiled and funcs["is_null"] is pv._is_null_compiled
    docs = {e.name: e.doc for e in pv.exports()}
    assert docs["get"] and docs["is_null"]


GETTER_MESSAGES = [*MESSAGES,
                   request("INVITE", "sip:bob@127.0.0.1", 5070).replace(
                       b"From: <sip:tester@127.0.0.1>", b"From: <sip:tester@>"),
                   request("INVITE", "sip:bob@127.0.0.1", 5070).replace(
                       b"From: <sip:tester@127.0.0.1>", b"From: <tel:+123>"),
                   request("INVITE", "sip:bob@127.0.0.1", 5070).replace(
                       b"To: <sip:bob@127.0.0.1>\r\n", b""),
                   request("INVITE", "sip:bob@127.0.0.1", 5070).replace(
                       b"From: <sip:tester@127.0.0.1>", b"From: <sip:tester@127.0.0.1>;tag")]


@pytest.mark.parametrize("name", ["fd", "ft", "tt"])
def test_compiled_getters_give_what_the_python_getters_give(name: str) -> None:
    from kemi_core.pv import builtin_msg

    pure = {"fd": builtin_msg._from_host,
            "ft": lambda c: builtin_msg._tag(c, to=False),
            "tt": lambda c: builtin_msg._tag(c, to=True)}[name]
    core, _ = offline_core()
    compiled = core.pv.spec(f"${name}").get
    assert type(compiled).__name__ == "builtin_function_or_method"
    seen = []
    for data in GETTER_MESSAGES:
        try:
            a, b = context(core, data), context(core, data)
        except Exception:  # noqa: BLE001 - a message the parser refuses: no case
            continue
        got, want = compiled(a), pure(b)
        assert (got, type(got), a.extra) == (want, type(want), b.extra), data
        seen.append((want, "last_error" in b.extra))
    assert (None, False) in seen and any(isinstance(v, str) for v, _ in seen)
    assert name != "fd" or (None, True) in seen  # a bad From URI: the Python getter's error
