"""What every config engine does to let a script call KEMI exports (``KSR.<module>.<name>``).

An engine finds an export by name (:class:`ExportTable`: the registry, else the engine's own
``KSR.x.exit``/``KSR.x.drop``), binds it once to a plain callable (:func:`bind_export`) and
hands that callable to its interpreter. The callable checks the number of arguments, converts
each to the export's parameter kind, calls ``func(ctx, *args)`` with the context of the route
running now and converts the result. Only the conversions differ between engines (what a Lua
number or a JS boolean becomes): an engine states them once as :class:`BindingRules`.

The callable is generated from source, once per signature shape and rules, so a call costs one
Python call, one class check per argument and the export itself (the hot path of every script).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from kemi_core.engine import flow_exports, normalize_bool, normalize_result, normalize_xval
from kemi_core.kemi.exports import KemiExport, ParamKind, ReturnKind
from kemi_core.kemi.registry import KemiRegistry
from kemi_core.sip.syntax import PURE_PYTHON

try:  # the generated callables' usual call compiled (KEMI_SIP_PURE=1: not used)
    if PURE_PYTHON:
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import ksr_call
except ImportError:
    ksr_call = None

#: ``conv(value, exp, position)``: an argument as the parameter kind wants it, or raise.
Conversion = Callable[[Any, KemiExport, int], Any]

# Result tests the generated callables make before calling the rules' slow conversion: a
# result that passes one goes to the script as it is.
PASS_INT = "r.__class__ is int"
PASS_INT32 = "(r.__class__ is int and -2147483648 <= r <= 2147483647)"
PASS_BOOL = "r is True or r is False"
PASS_NONE = "r is None"
PASS_STR = "r.__class__ is str"
PASS_ASCII = "(r.__class__ is str and r.isascii())"

_CONTEXTS = {"attr": "holder.ctx", "slot": "holder[0]"}

#: What a result becomes when it passes no test, unless an engine's rules say otherwise.
DEFAULT_RETURNS: dict[ReturnKind, Callable[[Any], Any]] = {
    ReturnKind.INT: normalize_result, ReturnKind.BOOL: normalize_bool,
    ReturnKind.XVAL: normalize_xval}
#: The results that go back as they are, unless an engine's rules say otherwise.
DEFAULT_PASSES: dict[ReturnKind, tuple[str, ...]] = {
    ReturnKind.INT: (PASS_INT,), ReturnKind.BOOL: (PASS_BOOL,),
    ReturnKind.XVAL: (PASS_NONE, PASS_STR, PASS_INT)}


@attrs.frozen(eq=False)
class BindingRules:
    """How one engine passes values to and from KEMI exports.

    A str argument whose class is ``str`` (and, with ``ascii_only``, is ASCII) and an int
    argument whose class is ``int`` go to the export as they are; any other value goes through
    ``to_str`` / ``to_int``, which convert it or raise the engine's argument error. A result
    passing one of ``passes[kind]`` goes back as it is, others through ``returns[kind]`` (both
    default to DEFAULT_PASSES / DEFAULT_RETURNS for the kinds an engine does not name).
    """

    to_int: Conversion
    to_str: Conversion
    #: an argument after the declared ones of a variadic export (KSR.x.modf)
    to_extra: Conversion
    #: raised with ``KSR.m.f(int a, ...): expected 2 arguments, got 1`` (see count_text)
    arg_error: type[Exception] = TypeError
    returns: Mapping[ReturnKind, Callable[[Any], Any]] = attrs.field(factory=dict)
    passes: Mapping[ReturnKind, tuple[str, ...]] = attrs.field(factory=dict)
    #: what the script gets from a NONE export (Lua: ``()``, no value at all)
    none_value: Any = None
    ascii_only: bool = False
    #: where the callable reads the running context: ``holder.ctx`` ("attr") or ``holder[0]``
    context: str = attrs.field(default="attr", validator=attrs.validators.in_(_CONTEXTS))
    #: hand every exception to ``holder.failed(exc)`` before raising it (an interpreter that
    #: loses Python exceptions, as QuickJS does)
    guarded: bool = False
    #: let Python check the number of arguments (its own TypeError), instead of arg_error
    native_arity: bool = False

    def count_error(self, exp: KemiExport, given: int) -> Exception:
        return self.arg_error(count_text(exp, given))


_NO = object()  # an argument the script did not pass

_makers: dict[tuple[Any, ...], Callable[..., Callable[..., Any]]] = {}


def _given(*args: Any) -> int:
    return sum(1 for a in args if a is not _NO)


def _source(ints: tuple[bool, ...], variadic: bool, kind: ReturnKind, rules: BindingRules) -> str:
    n = len(ints)
    names = [f"a{i}" for i in range(n)]
    if rules.native_arity:
        params = [*names, "*rest"] if variadic else names
    else:
        params = [f"{a}=NO" for a in names] + ["*rest"]
    body: list[str] = []
    if not rules.native_arity:
        if variadic:
            if n:
                body.append(f"if {names[-1]} is NO: raise count_error(exp, given({', '.join(names)}))")
        else:
            missing = f"{names[-1]} is NO or rest" if n else "rest"
            body.append(f"if {missing}: raise count_error(exp, given({', '.join(names)}) + len(rest))")
    for i, is_int in enumerate(ints):
        a = names[i]
        if is_int:
            test = f"{a}.__class__ is not int"
        elif rules.ascii_only:
            test = f"{a}.__class__ is not str or not {a}.isascii()"
        else:
            test = f"{a}.__class__ is not str"
        body.append(f"if {test}: {a} = conv{i}({a}, exp, {i})")
    args = "".join(f", {a}" for a in names)
    if variadic:
        args += f", *[extra(v, exp, {n} + i) for i, v in enumerate(rest)]"
    call = f"func({_CONTEXTS[rules.context]}{args})"
    if kind is ReturnKind.NONE:
        body += [call, "return none_value"]
    else:
        passes = rules.passes.get(kind, DEFAULT_PASSES.get(kind, ()))
        body.append(f"r = {call}")
        body.append(f"return r if {' or '.join(passes)} else slow(r)" if passes else "return slow(r)")
    if rules.guarded:
        body = ["try:", *("    " + line for line in body),
                "except BaseException as exc:", "    failed(exc)", "    raise"]
    convs = "".join(f"    conv{i} = convs[{i}]\n" for i in range(n))
    return ("def make(func, holder, exp, convs, extra, slow, count_error, failed, none_value, "
            "given=given, NO=NO):\n" + convs +
            f"    def call({', '.join(params)}):\n" +
            "".join(f"        {line}\n" for line in body) +
            "    return call\n")


def _maker(exp: KemiExport, rules: BindingRules) -> Callable[..., Callable[..., Any]]:
    ints = tuple(k is ParamKind.INT for k in exp.params)
    key = (rules, ints, exp.variadic, exp.returns)
    made = _makers.get(key)
    if made is None:
        namespace: dict[str, Any] = {"given": _given, "NO": _NO}
        shape = "".join("i" if i else "s" for i in ints) + ("*" if exp.variadic else "")
        exec(compile(_source(ints, exp.variadic, exp.returns, rules),
                     f"<ksr {shape}->{exp.returns.value}>", "exec"), namespace)
        made = _makers[key] = namespace["make"]
    return made


def bind_export(exp: KemiExport, holder: Any, rules: BindingRules) -> Callable[..., Any]:
    """The callable a script calls for ``exp``: reads the running context from ``holder``
    (``holder.ctx``, or ``holder[0]`` with ``context="slot"``) at each call."""
    convs = tuple(rules.to_int if k is ParamKind.INT else rules.to_str for k in exp.params)
    failed = holder.failed if rules.guarded else None
    slow = rules.returns.get(exp.returns, DEFAULT_RETURNS.get(exp.returns))
    call = _maker(exp, rules)(exp.func, holder, exp, convs, rules.to_extra, slow,
                              rules.count_error, failed, rules.none_value)
    compiled = _compiled_form(exp, rules)
    if compiled is None:
        return call
    kinds, passes = compiled
    return ksr_call(exp.func, holder, call, slow, rules.none_value, kinds, passes,
                    rules.context == "slot")


#: the result tests the compiled callable knows, by their letter (``ksr_call``'s passes)
_PASS_CODES = {PASS_INT: "I", PASS_INT32: "J", PASS_BOOL: "B", PASS_NONE: "N", PASS_STR: "S",
               PASS_ASCII: "A"}


def _compiled_form(exp: KemiExport, rules: BindingRules) -> tuple[str, str | None] | None:
    """(kinds, passes) of the compiled callable (kemi_core/sip/_fast.c ``ksr_call``), which
    makes the generated one's usual call without its frame and hands it every other call; None
    when it cannot stand for it: not built, a variadic export, a guarded engine, a result test
    it does not know, or Python's own arity (the Python engine: its scripts see the callable
    itself, a function with a name, a docstring and a signature)."""
    if (ksr_call is None or exp.variadic or rules.guarded or rules.native_arity
            or len(exp.params) > 8):
        return None
    kinds = "".join("i" if k is ParamKind.INT else ("s" if rules.ascii_only else "S")
                    for k in exp.params)
    if exp.returns is ReturnKind.NONE:
        return kinds, None
    tests = rules.passes.get(exp.returns, DEFAULT_PASSES.get(exp.returns, ()))
    if not all(t in _PASS_CODES for t in tests):
        return None
    return kinds, "".join(_PASS_CODES[t] for t in tests)


def count_text(exp: KemiExport, given: int) -> str:
    """``KSR.m.f(int a, str b): expected 2 arguments, got 1``; for a variadic export
    ``KSR.x.modf(str fname, ...): expected at least 1 argument, got 0``."""
    n = len(exp.params)
    sig = exp.signature(with_return=False)
    if exp.variadic:
        sig = sig[:-1] + (", ...)" if n else "...)")
        return f"{sig}: expected at least {n} argument{'s' if n != 1 else ''}, got {given}"
    return f"{sig}: expected {n} argument{'s' if n != 1 else ''}, got {given}"


# A message may carry invalid UTF-8, which kemi keeps as lone surrogates (surrogateescape).
# Interpreters take strings as strict UTF-8 (lupa, QuickJS), so such a value travels with each
# escaped byte as a code point of the last private-use block (valid UTF-8) and comes back the
# same way: KSR.hdr.append("X: " .. KSR.pv.get("$ci")) writes the original bytes.
_TO_SCRIPT = {0xDC80 + i: 0x10FF80 + i for i in range(128)}
_FROM_SCRIPT = {0x10FF80 + i: 0xDC80 + i for i in range(128)}


def to_script_text(value: str) -> str:
    """``value`` as a strict UTF-8 interpreter can take it (ASCII and valid text unchanged)."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.translate(_TO_SCRIPT)
    return value


def from_script_text(value: str) -> str:
    """The inverse of :func:`to_script_text` for a string a script passes back."""
    return value if value.isascii() else value.translate(_FROM_SCRIPT)


#: KSR.x.exit/drop even when the registry lacks the core's exports (engine unit tests).
BUILTINS: dict[tuple[str, str], KemiExport] = {(e.module, e.name): e for e in flow_exports()}
_BUILTIN_MODULES = frozenset(m for m, _ in BUILTINS)


def script_exports(registry: KemiRegistry) -> list[KemiExport]:
    """Every function a script can call through KSR (registry plus engine built-ins), sorted."""
    out = list(registry)
    out.extend(e for k, e in BUILTINS.items() if registry.lookup(*k) is None)
    return sorted(out, key=lambda e: (e.module, e.name))


def api_list(exports: Iterable[KemiExport], with_return: bool = False) -> dict[str, Any]:
    """The answer of an engine's ``<module>.api_list`` RPC (Kamailio's shape)."""
    methods = [{
        "func": exp.qualified_name,
        "module": exp.module,
        "name": exp.name,
        "params": [k.value for k in exp.params],
        "ret": exp.returns.value,
        "signature": exp.signature(with_return=with_return),
    } for exp in exports]
    return {"msize": len(methods), "methods": methods}


class ExportTable:
    """The KSR names of one engine instance, each export bound once, on first use.

    ``bind(exp)`` makes the callable (usually :func:`bind_export` with the engine's rules);
    ``label`` (``app_lua``) starts the log lines: each resolved name with ``log_resolved``, and
    each unknown name once.
    """

    def __init__(self, registry: KemiRegistry, bind: Callable[[KemiExport], Callable[..., Any]],
                 log: Any, label: str, log_resolved: bool = False) -> None:
        self.registry = registry
        self.log = log
        self.label = label
        self.log_resolved = log_resolved
        self._bind = bind
        self._bound: dict[tuple[str, str], Callable[..., Any]] = {}
        self._reported: set[str] = set()

    def export_for(self, module: str, name: str) -> KemiExport | None:
        exp = self.registry.lookup(module, name)
        return exp if exp is not None else BUILTINS.get((module, name))

    def has_module(self, module: str) -> bool:
        # "x" always exists: exit/drop fall back to the engine's own (see BUILTINS)
        return module != "" and (self.registry.has_module(module) or module in _BUILTIN_MODULES)

    def function(self, module: str, name: str) -> Callable[..., Any] | None:
        """The bound callable for KSR.<module>.<name>, built on first use, or None."""
        key = (module, name)
        fn = self._bound.get(key)
        if fn is None:
            exp = self.export_for(module, name)
            if exp is None:
                return None
            fn = self._bound[key] = self._bind(exp)
            if self.log_resolved:
                self.log.info("%s: resolved KSR.%s", self.label, exp.qualified_name)
        return fn

    def exports(self) -> list[KemiExport]:
        return script_exports(self.registry)

    def unknown(self, what: str) -> None:
        """Log once that the script asked for ``what`` (``KSR.foo.bar``), which is not there."""
        if what not in self._reported:
            self._reported.add(what)
            self.log.error("%s: %s is not a known KEMI function or module "
                           "(is its module loaded?)", self.label, what)
