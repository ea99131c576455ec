"""kemi_core.kemi.binding: the callables every engine hands its interpreter for KSR exports."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kemi_core.api import (
    PASS_INT,
    PASS_NONE,
    BindingRules,
    ExportTable,
    KemiExport,
    KemiRegistry,
    ReturnKind,
    bind_export,
    export,
    from_script_text,
    to_script_text,
)


class Holder:
    def __init__(self) -> None:
        self.ctx: Any = "ctx-1"
        self.failures: list[BaseException] = []

    def failed(self, exc: BaseException) -> None:
        self.failures.append(exc)


class ArgError(TypeError):
    pass


def _to_int(value: Any, exp: KemiExport, pos: int) -> int:
    if type(value) is str and value.isdigit():
        return int(value)
    raise ArgError(f"{exp.qualified_name}: argument {pos + 1}")


def _to_str(value: Any, exp: KemiExport, pos: int) -> str:
    if type(value) is int:
        return str(value)
    raise ArgError(f"{exp.qualified_name}: argument {pos + 1}")


def rules(**kw: Any) -> BindingRules:
    base: dict[str, Any] = dict(
        to_int=_to_int, to_str=_to_str, to_extra=lambda v, e, p: f"<{v}>",
        arg_error=ArgError,
        returns={ReturnKind.INT: lambda r: -1 if r is None else int(r),
                 ReturnKind.XVAL: lambda r: f"slow {r}"},
        passes={ReturnKind.INT: (PASS_INT,), ReturnKind.XVAL: (PASS_NONE,)},
        none_value=())
    base.update(kw)
    return BindingRules(**base)


def recorder(seen: list[tuple[Any, ...]], result: Any = 5) -> Any:
    def func(ctx: Any, *args: Any) -> Any:
        seen.append((ctx, *args))
        return result
    return func


def test_arguments_are_converted_only_when_their_class_is_not_the_kind() -> None:
    seen: list[tuple[Any, ...]] = []
    holder = Holder()
    call = bind_export(export("m", "f", recorder(seen), "isi"), holder, rules())
    assert call(1, "a", "7") == 5
    holder.ctx = "ctx-2"  # read at each call, not at binding
    assert call(2, 3, 4) == 5
    assert seen == [("ctx-1", 1, "a", 7), ("ctx-2", 2, "3", 4)]
    with pytest.raises(ArgError, match="m.f: argument 1"):
        call("x", "a", 1)


def test_the_number_of_arguments_is_checked_with_the_engines_error() -> None:
    call = bind_export(export("m", "f", recorder([]), "ss"), Holder(), rules())
    with pytest.raises(ArgError, match=r"^KSR\.m\.f\(str p1, str p2\): expected 2 arguments, got 1$"):
        call("a")
    with pytest.raises(ArgError, match="expected 2 arguments, got 3"):
        call("a", "b", "c")
    none = bind_export(export("m", "g", recorder([]), ""), Holder(), rules())
    with pytest.raises(ArgError, match="expected 0 arguments, got 1"):
        none(None)  # an explicit nil/null counts


def test_a_declared_variadic_export_gets_its_extras_through_to_extra() -> None:
    seen: list[tuple[Any, ...]] = []
    modf = export("x", "modf", recorder(seen), "s", variadic=True)
    call = bind_export(modf, Holder(), rules())
    assert call("fn", 1, "b") == 5 and call("fn") == 5
    assert seen == [("ctx-1", "fn", "<1>", "<b>"), ("ctx-1", "fn")]
    with pytest.raises(ArgError, match=r"^KSR\.x\.modf\(str args, \.\.\.\): expected at least 1 argument, got 0$"):
        call()
    # the same callable, not declared variadic: extras are a count error
    plain = bind_export(export("x", "modf", recorder([]), "s"), Holder(), rules())
    with pytest.raises(ArgError, match="expected 1 argument, got 2"):
        plain("fn", "a")


@pytest.mark.parametrize(("kind", "value", "expected"), [
    (ReturnKind.INT, 3, 3), (ReturnKind.INT, None, -1), (ReturnKind.XVAL, None, None),
    (ReturnKind.XVAL, "s", "slow s"), (ReturnKind.NONE, 9, ()),
])
def test_results_pass_as_they_are_or_through_the_slow_conversion(
        kind: ReturnKind, value: Any, expected: Any) -> None:
    exp = KemiExport(module="m", name="r", func=recorder([], value), returns=kind)
    assert bind_export(exp, Holder(), rules())() == expected


def test_guarded_callables_hand_the_exception_to_the_holder_first() -> None:
    def boom(ctx: Any) -> int:
        raise ValueError("boom")

    holder = Holder()
    call = bind_export(export("m", "boom", boom, ""), holder, rules(guarded=True))
    with pytest.raises(ValueError, match="boom"):
        call()
    with pytest.raises(ArgError):
        call(1)
    assert [type(e) for e in holder.failures] == [ValueError, ArgError]


def test_slot_context_and_pythons_own_arity() -> None:
    seen: list[tuple[Any, ...]] = []
    slot = ["ctx-s"]
    call = bind_export(export("m", "f", recorder(seen), "s"), slot,
                       rules(context="slot", native_arity=True))
    assert call("a") == 5 and seen == [("ctx-s", "a")]
    with pytest.raises(TypeError, match="missing 1 required positional"):
        call()


def test_text_that_is_not_utf8_travels_to_the_script_and_back_unchanged() -> None:
    raw = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
    there = to_script_text(raw)
    there.encode("utf-8")  # strict UTF-8, as lupa and QuickJS want it
    assert from_script_text(there) == raw
    assert to_script_text("café") == "café" and to_script_text("abc") == "abc"


def test_export_table_binds_once_falls_back_to_builtins_and_reports_unknown_names_once(
        caplog: pytest.LogCaptureFixture) -> None:
    registry = KemiRegistry()
    registry.add([export("sl", "send_reply", recorder([]), "is")])
    bound: list[str] = []

    def bind(exp: KemiExport) -> Any:
        bound.append(exp.qualified_name)
        return lambda *a: exp.qualified_name

    table = ExportTable(registry, bind, logging.getLogger("t"), "app_test", log_resolved=True)
    with caplog.at_level(logging.INFO):
        fn = table.function("sl", "send_reply")
        assert fn is not None and fn is table.function("sl", "send_reply")
        assert table.function("x", "exit") is not None  # the engine's own KSR.x.exit
        assert table.function("sl", "nosuch") is None
        table.unknown("KSR.sl.nosuch")
        table.unknown("KSR.sl.nosuch")
    assert bound == ["sl.send_reply", "x.exit"]
    assert table.has_module("x") and table.has_module("sl") and not table.has_module("")
    assert caplog.text.count("app_test: KSR.sl.nosuch is not a known KEMI function") == 1
    assert "app_test: resolved KSR.sl.send_reply" in caplog.text
    assert [e.qualified_name for e in table.exports()] == ["sl.send_reply", "x.drop", "x.exit"]
