"""The compiled KSR callable (kemi_core/sip/_fast.c ksr_call) answers every call as the
generated Python wrapper it stands for: results, conversions, errors."""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any

import pytest

from kemi_core.kemi import binding
from kemi_core.kemi.binding import (
    PASS_ASCII,
    PASS_INT32,
    PASS_NONE,
    BindingRules,
    bind_export,
)
from kemi_core.kemi.exports import KemiExport, ParamKind, ReturnKind

pytestmark = pytest.mark.skipif(binding.ksr_call is None,
                                reason="the C helpers were not built (or KEMI_SIP_PURE)")


class ArgError(Exception):
    pass


def to_int(value: Any, exp: KemiExport, pos: int) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ArgError(f"{exp.name} #{pos}: {value!r} is no int")


def to_str(value: Any, exp: KemiExport, pos: int) -> str:
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value.encode("ascii", "replace").decode()
    raise ArgError(f"{exp.name} #{pos}: {value!r} is no str")


RULES = [
    BindingRules(to_int=to_int, to_str=to_str, to_extra=to_str, arg_error=ArgError,
                 none_value=(), ascii_only=True,
                 passes={ReturnKind.XVAL: (PASS_NONE, PASS_INT32, PASS_ASCII)}),
    BindingRules(to_int=to_int, to_str=to_str, to_extra=to_str, context="slot"),
    BindingRules(to_int=to_int, to_str=to_str, to_extra=to_str,
                 returns={ReturnKind.INT: lambda r: -99}, passes={ReturnKind.INT: (PASS_INT32,)}),
]
ARGS = ["a", "\u00e9", 5, -1, 2**40, True, 2.0, 2.5, None, b"x"]
RESULTS = [0, 1, -2**31, 2**31, 2**63, True, False, None, "ok", "\u00e9", 1.5, b"r", ("t",)]


def outcome(fn: Any, *args: Any, **kw: Any) -> object:
    try:
        return ("ok", fn(*args, **kw))
    except Exception as exc:  # noqa: BLE001 - compared, whatever it is
        return ("raised", type(exc).__name__, str(exc))


@pytest.mark.parametrize("rules", RULES)
@pytest.mark.parametrize("params", [(), (ParamKind.STR,), (ParamKind.INT,),
                                    (ParamKind.STR, ParamKind.STR, ParamKind.INT)])
@pytest.mark.parametrize("returns", list(ReturnKind))
def test_compiled_is_the_generated(monkeypatch: pytest.MonkeyPatch, rules: BindingRules,
                                   params: tuple[ParamKind, ...], returns: ReturnKind) -> None:
    seen: list[tuple[Any, ...]] = []
    result: list[Any] = [None]

    def func(ctx: Any, *args: Any) -> Any:
        seen.append((ctx, *args))
        if result[0] == "boom":
            raise ValueError("boom")
        return result[0]

    holder: Any = ["ctx0"] if rules.context == "slot" else SimpleNamespace(ctx="ctx0")
    exp = KemiExport("m", "f", func, params, returns)
    compiled = bind_export(exp, holder, rules)
    monkeypatch.setattr(binding, "ksr_call", None)
    generated = bind_export(exp, holder, rules)
    assert type(compiled) is not type(generated)
    n = len(params)
    calls = [args for k in (n, n - 1, n + 1) if k >= 0
             for args in itertools.islice(itertools.product(ARGS, repeat=k), 60)]
    for args, r in itertools.product(calls, [*RESULTS, "boom"]):
        result[0] = r
        seen.clear()
        got = outcome(compiled, *args)
        got_seen = list(seen)
        seen.clear()
        assert got == outcome(generated, *args), (args, r)
        assert got_seen == seen
    if n:
        result[0] = 1
        assert outcome(compiled, a0=ARGS[0]) == outcome(generated, a0=ARGS[0])


def test_reads_the_context_at_each_call() -> None:
    rules = RULES[0]
    holder = SimpleNamespace(ctx=1)
    call = bind_export(KemiExport("m", "f", lambda ctx: ctx, (), ReturnKind.INT), holder, rules)
    assert call() == 1
    holder.ctx = 2
    assert call() == 2
    assert "ksr_call" in repr(call)
