"""KEMI export records: what a module offers to routing scripts.

A record is Kamailio's ``sr_kemi_t``: module name ("" for core functions), function name,
return kind, the callable and up to six parameter kinds. Unlike Kamailio, any combination of
int and str parameters is allowed. Records are checked once, at load time.

Every exported callable takes the per-message context first (Kamailio's ``sip_msg_t*``),
then its script-visible parameters: ``def send_reply(ctx: MsgContext, code: int, reason: str)``.
"""

from __future__ import annotations

import enum
import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any

import attrs

#: Kamailio's SR_KEMI_PARAMS_MAX.
MAX_PARAMS = 6

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ParamKind(enum.Enum):
    """Kind of one script-visible parameter (SR_KEMIP_INT / SR_KEMIP_STR)."""

    INT = "int"
    STR = "str"


class ReturnKind(enum.Enum):
    """What the function returns to the script.

    INT: Kamailio's convention: > 0 true, < 0 false, 0 stops the script.
    BOOL: True/False.  XVAL: str, int or None (nil in Lua).  NONE: nothing.
    """

    INT = "int"
    BOOL = "bool"
    XVAL = "xval"
    NONE = "none"


class ExportError(ValueError):
    """A KEMI export record is malformed (raised at load, never per message)."""


def _check_name(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if attribute.name == "module" and value == "":
        return
    if not _NAME_RE.match(value):
        raise ExportError(f"invalid KEMI {attribute.name} name {value!r}")


def _as_tuple(items: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(items)


def _check_params(_inst: object, _attr: object, value: tuple[ParamKind, ...]) -> None:
    if len(value) > MAX_PARAMS:
        raise ExportError(f"a KEMI function takes at most {MAX_PARAMS} parameters, not {len(value)}")
    for kind in value:
        if not isinstance(kind, ParamKind):
            raise ExportError(f"parameter kind must be ParamKind.INT or ParamKind.STR, not {kind!r}")


@attrs.frozen
class KemiExport:
    """One function exported to KEMI (Kamailio's ``sr_kemi_t``)."""

    module: str = attrs.field(validator=_check_name)
    name: str = attrs.field(validator=_check_name)
    func: Callable[..., Any] = attrs.field(validator=attrs.validators.is_callable())
    params: tuple[ParamKind, ...] = attrs.field(default=(), converter=_as_tuple, validator=_check_params)
    returns: ReturnKind = attrs.field(
        default=ReturnKind.INT, validator=attrs.validators.instance_of(ReturnKind)
    )
    doc: str = ""
    #: Parameter names for docs and stubs (same length as ``params``).
    param_names: tuple[str, ...] = attrs.field(default=(), converter=_as_tuple)

    def __attrs_post_init__(self) -> None:
        if self.param_names and len(self.param_names) != len(self.params):
            raise ExportError(f"{self.qualified_name}: {len(self.param_names)} names for {len(self.params)} parameters")

    @property
    def qualified_name(self) -> str:
        """``module.name`` as scripts write it after ``KSR.`` (just ``name`` for core)."""
        return f"{self.module}.{self.name}" if self.module else self.name


_KIND_LETTERS = {"i": ParamKind.INT, "s": ParamKind.STR}


def export(
    module: str,
    name: str,
    func: Callable[..., Any],
    params: str = "",
    returns: ReturnKind | str = ReturnKind.INT,
    doc: str | None = None,
) -> KemiExport:
    """Build a record the short way: ``export("sl", "sreply", sl_sreply, "is")``.

    ``params`` is one letter per parameter, ``i`` for int and ``s`` for str. Parameter names and
    the docstring are taken from ``func`` (its first parameter, the message context, is skipped).
    """
    try:
        kinds = tuple(_KIND_LETTERS[c] for c in params)
    except KeyError as exc:
        raise ExportError(f"{module}.{name}: parameter letters are 'i' or 's', got {params!r}") from exc
    names: tuple[str, ...] = ()
    try:
        sig_params = list(inspect.signature(func).parameters)[1:]
        if len(sig_params) >= len(kinds):
            names = tuple(sig_params[: len(kinds)])
    except (TypeError, ValueError):
        pass
    ret = returns if isinstance(returns, ReturnKind) else ReturnKind(returns)
    text = doc if doc is not None else inspect.getdoc(func) or ""
    return KemiExport(module=module, name=name, func=func, params=kinds, returns=ret, doc=text,
                      param_names=names)
