"""In a worker: say where a message is stuck when the main process asks (SIGUSR2).

The main process's watchdog sends SIGUSR2 to a worker that has been busy with one message
for too long. Python runs the handler between two bytecodes of whatever runs now: a Python
script's loop, a native route's closures, or the no-op callback an engine calls from a hook
while foreign code runs (app_lua calls one every million Lua instructions). The handler
writes "route, file:line" into the worker's board slot; the main process logs it and kills
the worker. A worker stuck in C code that never returns to Python cannot answer; it is
killed all the same after a short grace.
"""

from __future__ import annotations

import logging
import signal
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kemi_core.runtime.board import WorkerBoard
    from kemi_core.runtime.core import Core

log = logging.getLogger("kemi.watchdog")

REPORT_SIGNAL = signal.SIGUSR2


def install(core: Core, board: WorkerBoard, rank: int) -> None:
    """Answer REPORT_SIGNAL in this worker with a report in its board slot."""

    def on_signal(signum: int, frame: types.FrameType | None) -> None:
        try:
            board.write_report(rank, describe(core, frame))
        except Exception as exc:  # never let the report itself fail the worker
            board.write_report(rank, f"(no report: {type(exc).__name__}: {exc})")

    signal.signal(REPORT_SIGNAL, on_signal)


def describe(core: Core, frame: types.FrameType | None) -> str:
    """``route <name> at <file:line>`` of the message running under ``frame``."""
    route = running_route(frame)
    if route is None:  # an engine whose run has no Python frame says it (app_lua's compiled run)
        named = getattr(core.engine, "route", None)
        route = named if isinstance(named, str) else None
    where = script_location(core, frame)
    engine = getattr(core.engine, "name", "?")
    parts = [f"{engine} route {route}" if route else f"{engine} (no route running)"]
    parts.append(f"at {where}" if where else "at an unknown place")
    return " ".join(parts)


def running_route(frame: types.FrameType | None) -> str | None:
    """The innermost route being run: a frame running ``name`` for a message context."""
    from kemi_core.runtime.context import MsgContext

    while frame is not None:
        local = frame.f_locals
        name = local.get("name")
        if isinstance(name, str) and isinstance(local.get("ctx"), MsgContext):
            return name
        frame = frame.f_back
    return None


def script_location(core: Core, frame: types.FrameType | None) -> str | None:
    """file:line in the routing script: asked of the engine when it can tell (Lua, Python),
    else the innermost native statement (its ``loc``) on the stack."""
    locate = getattr(core.engine, "current_location", None)
    if locate is not None:
        try:
            where = locate()
        except Exception:
            where = None
        if where:
            return str(where)
    while frame is not None:
        loc: Any = frame.f_locals.get("loc")
        if loc is not None and hasattr(loc, "file") and hasattr(loc, "line"):
            return f"{loc.file}:{loc.line}"
        frame = frame.f_back
    return None
