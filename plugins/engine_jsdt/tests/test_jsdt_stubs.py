"""KSR.d.ts's structure, checked by parsing (tests/e2e/test_jsdt_stubs_cli.py runs the
TypeScript compiler on it where one is installed)."""

from __future__ import annotations

import re

from kemi_core.api import KemiRegistry, ReturnKind, export
from kemi_engine_jsdt.stubs import typescript_stub


def _send_reply(ctx: object, code: int, reason: str) -> int:
    """Send a stateless reply."""
    return 1


def _modf(ctx: object, fname: str, *params: str) -> int:
    return 1


def test_declarations_without_a_compiler() -> None:
    """The structure tsc reads, checked by parsing: one interface per module, each export a
    method with its parameter names and kinds, reserved words kept out of parameter names."""
    reg = KemiRegistry()
    reg.add([
        export("sl", "send_reply", _send_reply, "is"),
        export("x", "modf", _modf, "s", variadic=True),
        export("x", "exit", lambda ctx: None, "", ReturnKind.NONE),
        export("pv", "get", lambda ctx, name: None, "s", ReturnKind.XVAL),
        export("debugger", "dbg_pv_dump", lambda ctx, mask, level: 1, "ii"),
        export("kx", "isflagset", lambda ctx, flag: True, "i", ReturnKind.BOOL),
        export("", "info", lambda ctx, msg: None, "s", ReturnKind.NONE),
        export("t", "case", lambda ctx, default: 1, "s"),
    ])
    text = typescript_stub(reg)
    assert "declare const KSR: KSR.Root;" in text
    for line in [
        "    info(msg: string): void;",
        "    sl: slModule;", "    debugger: debuggerModule;",
        "  interface slModule {", "    /** Send a stateless reply. */",
        "    send_reply(code: number, reason: string): number;",
        "    modf(fname: string, ...more: (string | number)[]): number;",
        "    exit(): never;", "    get(name: string): XVal;",
        "    isflagset(flag: number): boolean;",
        "    dbg_pv_dump(mask: number, level: number): number;",
        "    case(default_: string): number;",
    ]:
        assert line in text.splitlines(), line
    # balanced braces, and every member line is a complete declaration
    assert text.count("{") == text.count("}")
    members = [ln for ln in text.splitlines() if ln.startswith("    ") and "(" in ln
               and not ln.strip().startswith("/**")]
    assert all(re.fullmatch(r"    \w+\(.*\): [\w |]+;", m) for m in members), members
