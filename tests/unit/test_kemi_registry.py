"""KEMI export records and the registry: kinds, limits, lookups."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from kemi_core.kemi import KemiExport, KemiRegistry, ParamKind, ReturnKind, export
from kemi_core.kemi.exports import ExportError


def _f(ctx: Any, *args: Any) -> int:
    return 1


@pytest.mark.parametrize("n", range(0, 7))
def test_every_combination_of_int_and_str_up_to_six_params(n: int) -> None:
    combos = list(itertools.product("is", repeat=n))
    reg = KemiRegistry()
    reg.add(export("m", f"f{i}", _f, "".join(c)) for i, c in enumerate(combos))
    assert len(reg) == len(combos)
    for i, combo in enumerate(combos):
        exp = reg.lookup("m", f"f{i}")
        assert exp is not None
        assert exp.params == tuple(ParamKind.INT if c == "i" else ParamKind.STR for c in combo)


def test_seven_params_refused() -> None:
    with pytest.raises(ExportError, match="at most 6"):
        export("m", "f", _f, "iiiiiii")


def test_bad_letters_names_and_kinds_refused() -> None:
    with pytest.raises(ExportError):
        export("m", "f", _f, "x")
    with pytest.raises(ExportError):
        export("m", "bad name", _f, "")
    with pytest.raises(ExportError):
        KemiExport("m", "f", _f, params=("int",))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        KemiExport("m", "f", "not callable")  # type: ignore[arg-type]


def test_core_module_is_empty_string_and_qualified_names() -> None:
    core = export("", "info", _f, "s")
    sub = export("sl", "send_reply", _f, "is")
    assert core.qualified_name == "info"
    assert sub.qualified_name == "sl.send_reply"


def test_duplicate_refused_and_lookup_misses() -> None:
    reg = KemiRegistry()
    reg.add([export("sl", "send_reply", _f, "is")])
    with pytest.raises(ExportError, match="twice"):
        reg.add([export("sl", "send_reply", _f, "is")])
    assert reg.lookup("sl", "nope") is None
    assert reg.lookup("nope", "send_reply") is None
    assert reg.has_module("sl") and not reg.has_module("tm")


def test_param_names_and_doc_come_from_the_callable() -> None:
    def send_reply(ctx: Any, code: int, reason: str) -> int:
        """Send a reply."""
        return 1

    exp = export("sl", "send_reply", send_reply, "is", ReturnKind.INT)
    assert exp.param_names == ("code", "reason")
    assert exp.doc == "Send a reply."
    assert exp.returns is ReturnKind.INT


def test_records_are_frozen() -> None:
    exp = export("sl", "x", _f, "")
    with pytest.raises(AttributeError):
        exp.name = "y"  # type: ignore[misc]


def test_export_takes_kinds_from_type_hints() -> None:
    def greet(ctx: object, name: str, times: int) -> str:
        """Greet ``name``."""
        return name * times

    def flag(ctx: object) -> bool:
        return True

    def void(ctx: object, text: str) -> None:
        return None

    def plain(ctx: object, code: int):  # type: ignore[no-untyped-def]
        return 1

    exp = export("hello", "greet", greet)
    assert exp.params == (ParamKind.STR, ParamKind.INT)
    assert exp.param_names == ("name", "times")
    assert exp.returns is ReturnKind.XVAL
    assert export("hello", "flag", flag).returns is ReturnKind.BOOL
    assert export("hello", "void", void).returns is ReturnKind.NONE
    assert export("hello", "plain", plain).returns is ReturnKind.INT
    # The letter form keeps Kamailio's int convention unless told otherwise.
    assert export("hello", "greet", greet, "si").returns is ReturnKind.INT


def test_export_refuses_what_hints_cannot_say() -> None:
    def floaty(ctx: object, x: float) -> int:
        return 1

    def untyped(ctx, x):  # type: ignore[no-untyped-def]
        return 1

    def star(ctx: object, *args: str) -> int:
        return 1

    with pytest.raises(ExportError, match="type hint int or str"):
        export("m", "floaty", floaty)
    with pytest.raises(ExportError, match="type hint int or str"):
        export("m", "untyped", untyped)
    with pytest.raises(ExportError, match="plain positional"):
        export("m", "star", star)


def test_an_export_declares_whether_it_takes_extra_arguments() -> None:
    """KSR.x.modf-style exports are declared variadic (one source of truth every engine reads
    when it binds the export); the callable must then take ``*args`` for the extras."""

    def modf(ctx: object, fname: str, *params: str) -> int:
        return 1

    def plain(ctx: object, fname: str) -> int:
        return 1

    assert export("x", "modf", modf, "s", variadic=True).variadic
    assert not export("x", "modf", modf, "s").variadic  # *args alone declares nothing
    assert not export("x", "plain", plain, "s").variadic
    with pytest.raises(ExportError, match="must take \\*args"):
        export("x", "plain", plain, "s", variadic=True)
