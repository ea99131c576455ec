"""hello: a third-party module written from kemi's public API only.

``loadmodule "hello.so"``, ``modparam("hello", "greeting", "Hi")``; scripts call
``KSR.hello.greet(name)``, which adds ``X-Hello: <greeting> <name>`` to the message and counts
the call; the RPC ``hello.calls`` answers how many calls all workers made.
"""

from __future__ import annotations

from typing import Any

from kemi_core.api import Core, KemiExport, MsgContext, export, hookimpl

MODULE = "hello"


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "greeting", str, "Hello", doc="the word greet() puts first")
    core.add_rpc("hello.calls", rpc_calls, "How many times KSR.hello.greet ran, in all workers.")


@hookimpl
def mod_init(core: Core) -> None:
    core.counter(MODULE, "calls", "calls of KSR.hello.greet")


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return [export(MODULE, "greet", greet)]


def greet(ctx: MsgContext, name: str) -> int:
    """Add ``X-Hello: <greeting> <name>`` to the message."""
    core = ctx.core
    ctx.msg.append_header("X-Hello", f"{core.modparam(MODULE, 'greeting')} {name}")
    core.counter(MODULE, "calls").inc()
    return 1


def rpc_calls(core: Core, params: list[Any]) -> int:
    return core.counter(MODULE, "calls").value
