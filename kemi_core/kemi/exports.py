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


def _takes_extra(func: Callable[..., Any]) -> bool:
    """Whether ``func`` takes ``*args`` (checked once, for an export declared variadic)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return True  # a builtin without a readable signature: trust the declaration
    return any(p.kind is p.VAR_POSITIONAL for p in params)


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
    #: Takes any number of extra arguments after the declared ones (``KSR.x.modf``): every
    #: engine passes them on (as strings); the callable must take ``*args`` for them.
    variadic: bool = False

    def __attrs_post_init__(self) -> None:
        if self.param_names and len(self.param_names) != len(self.params):
            raise ExportError(f"{self.qualified_name}: {len(self.param_names)} names for {len(self.params)} parameters")
        if self.variadic and not _takes_extra(self.func):
            raise ExportError(f"{self.qualified_name}: a variadic export's callable must take "
                              "*args after its declared parameters")

    @property
    def qualified_name(self) -> str:
        """``module.name`` as scripts write it after ``KSR.`` (just ``name`` for core)."""
        return f"{self.module}.{self.name}" if self.module else self.name

    def signature(self, with_return: bool = True) -> str:
        """``KSR.sl.send_reply(int code, str reason) -> int``: the one text every engine's
        error messages, the RPC listings and ``kemi docs`` show (unnamed parameters are
        ``p1`` ...)."""
        names = self.param_names or tuple(f"p{i + 1}" for i in range(len(self.params)))
        args = ", ".join(f"{k.value} {n}" for k, n in zip(self.params, names, strict=True))
        text = f"KSR.{self.qualified_name}({args})"
        return f"{text} -> {self.returns.value}" if with_return else text


#: ``func.message_fact`` (see :func:`message_fact`): what an export's answer depends on.
MessageFact = tuple[Any, ...]


def message_fact(func: Callable[..., Any], *fact: Any) -> None:
    """Say that export callable ``func`` answers from the message's kind and method alone
    (``msg.is_request``, ``msg.method``: for a reply the CSeq method), so an engine may answer
    it without calling Python (app_lua reads them once per route run):

    ``("method", NAME)``        -> bool, ``msg.method == NAME``
    ``("method_in", LETTERS)``  -> bool, ``msg.method.upper()`` among the names of the letters
                                   (LETTERS: letter -> name; other letters: call ``func``)
    ``("kind", IF_REQUEST, IF_REPLY)`` -> int, by ``msg.is_request``

    A wrapped export (the debugger's cfgtrace) has another callable, so it is called as usual.
    """
    func.message_fact = fact  # type: ignore[attr-defined]


_KIND_LETTERS = {"i": ParamKind.INT, "s": ParamKind.STR}
_KIND_HINTS = {int: ParamKind.INT, "int": ParamKind.INT, str: ParamKind.STR, "str": ParamKind.STR}
_RETURN_HINTS = {int: ReturnKind.INT, "int": ReturnKind.INT, bool: ReturnKind.BOOL,
                 "bool": ReturnKind.BOOL, None: ReturnKind.NONE, "None": ReturnKind.NONE}


def _script_params(module: str, name: str, func: Callable[..., Any]) -> list[inspect.Parameter]:
    """The parameters a script passes: all but the first (the message context)."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ExportError(f"{module}.{name}: cannot read the signature of {func!r}") from exc
    return params[1:]


def kinds_from_hints(module: str, name: str, func: Callable[..., Any]) -> tuple[ParamKind, ...]:
    """Parameter kinds from the ``int`` / ``str`` type hints of ``func`` after its context."""
    kinds = []
    for p in _script_params(module, name, func):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY):
            raise ExportError(f"{module}.{name}: parameter {p.name} must be a plain positional "
                              "one (KEMI passes up to 6 ints and strs by position)")
        kind = _KIND_HINTS.get(p.annotation)
        if kind is None:
            raise ExportError(f"{module}.{name}: parameter {p.name} needs the type hint int or "
                              f"str (got {p.annotation!r}), or give the kinds as letters")
        kinds.append(kind)
    return tuple(kinds)


def return_from_hint(func: Callable[..., Any]) -> ReturnKind:
    """The return kind the return hint of ``func`` says: ``int`` (the default when there is
    none), ``bool``, ``None``, anything else (``str``, ``str | None`` ...) is XVAL."""
    try:
        hint = inspect.signature(func).return_annotation
    except (TypeError, ValueError):
        return ReturnKind.INT
    if hint is inspect.Signature.empty:
        return ReturnKind.INT
    return _RETURN_HINTS.get(hint, ReturnKind.XVAL)


def export(
    module: str,
    name: str,
    func: Callable[..., Any],
    params: str | None = None,
    returns: ReturnKind | str | None = None,
    doc: str | None = None,
    variadic: bool = False,
) -> KemiExport:
    """Build a record the short way: ``export("hello", "greet", greet)``.

    ``func(ctx, ...)`` takes the message context first, then the script's arguments. Their kinds
    come from ``func``'s type hints (``int`` or ``str``), or from ``params``, one letter per
    parameter: ``i`` for int, ``s`` for str (``export("sl", "sreply", sl_sreply, "is")``).
    ``returns`` defaults to what the return hint says: ``-> int`` (or none) is Kamailio's int
    convention, ``-> bool`` true/false, ``-> None`` nothing, anything else a value (str, int or
    None). Parameter names and the docstring are taken from ``func``. ``variadic=True``: the
    script may pass extra arguments after the declared ones, which ``func`` takes as ``*args``.
    """
    if params is None:
        kinds = kinds_from_hints(module, name, func)
    else:
        try:
            kinds = tuple(_KIND_LETTERS[c] for c in params)
        except KeyError as exc:
            raise ExportError(f"{module}.{name}: parameter letters are 'i' or 's', got {params!r}") from exc
    names: tuple[str, ...] = ()
    try:
        sig_params = [p.name for p in _script_params(module, name, func)]
        if len(sig_params) >= len(kinds):
            names = tuple(sig_params[: len(kinds)])
    except ExportError:
        pass
    if returns is None:
        ret = return_from_hint(func) if params is None else ReturnKind.INT
    else:
        ret = returns if isinstance(returns, ReturnKind) else ReturnKind(returns)
    text = doc if doc is not None else inspect.getdoc(func) or ""
    return KemiExport(module=module, name=name, func=func, params=kinds, returns=ret, doc=text,
                      param_names=names, variadic=variadic)
