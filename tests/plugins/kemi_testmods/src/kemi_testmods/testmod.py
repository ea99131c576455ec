"""Module ``testmod``: exports with every parameter-kind mix, params and an RPC command."""

from __future__ import annotations

from typing import Any

from kemi_core.api import Core, KemiExport, MsgContext, ReturnKind, export, hookimpl

calls: list[tuple[str, tuple[Any, ...]]] = []


def _concat(ctx: MsgContext, *args: Any) -> str:
    calls.append(("concat", args))
    return "|".join(str(a) for a in args)


def _isis(ctx: MsgContext, a: int, b: str, c: int, d: str) -> int:
    calls.append(("isis", (a, b, c, d)))
    return a + c


def _six(ctx: MsgContext, a: int, b: str, c: int, d: str, e: int, f: str) -> str:
    return f"{a}{b}{c}{d}{e}{f}"


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param("testmod", "greeting", str, "hello")
    core.declare_param("testmod", "count", int, 1)
    core.declare_param("testmod", "item", str, multi=True)
    core.add_rpc("testmod.greeting", lambda c, p: c.modparam("testmod", "greeting"), "the greeting")


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return [
        export("testmod", "isis", _isis, "isis"),
        export("testmod", "six", _six, "isisis", ReturnKind.XVAL),
        export("testmod", "concat_ss", _concat, "ss", ReturnKind.XVAL),
    ]
