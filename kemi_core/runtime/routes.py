"""Running a script callback: the one place where exit, drop and a script fault get their
meaning, for every engine and every caller (dispatcher, onsend, tm, modules' event routes).

``run_route`` returns Kamailio's int (``normalize_result`` of what the engine returned);
``KSR.x.exit()`` gives 1; ``KSR.x.drop()`` sets ``ctx.dropped`` and gives 0; a script fault
(any exception out of ``engine.run``) is logged once with the place the engine gave, recorded
in ``ctx.fault`` and gives -1. Callers decide what that means for the message: the dispatcher
answers a request 500 when nothing was sent, onsend still sends, tm goes on with the
transaction.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kemi_core.core_exports.log import SCRIPT_FAULT
from kemi_core.engine import ScriptDrop, ScriptExit, normalize_result
from kemi_core.errors import KemiError
from kemi_core.runtime.context import RouteType
from kemi_core.runtime.logs import LOG_CONTEXT
from kemi_core.runtime.ratelimit import brief_error

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext
    from kemi_core.runtime.core import Core

log = logging.getLogger("kemi.script")

#: the routes that run on the request again after a reply or a timer: their log lines carry
#: the request's log_prefix (a branch failure route, run on the reply, keeps the reply's)
_ON_REQUEST_AGAIN = RouteType.FAILURE


def run_route(core: Core, name: str, ctx: MsgContext, *args: str | int) -> int:
    """Run callback ``name`` of the active engine for ``ctx`` (see the module docstring);
    ``args`` go to the callback after the message (a KEMI event callback's event name). A
    failure route logs with the log_prefix of its request, as Kamailio 5.6 (run: "{1 1 INVITE
    ...}" there, where the reply that ended the transaction had "{2 1 INVITE ...}")."""
    if ctx.route_type & _ON_REQUEST_AGAIN and LOG_CONTEXT.prefix_format is not None:
        before = LOG_CONTEXT.prefix
        try:
            LOG_CONTEXT.prefix = str(LOG_CONTEXT.prefix_format(ctx))
        except Exception:  # noqa: BLE001 - as the dispatcher: a header it reads may not parse
            LOG_CONTEXT.prefix = ""
        try:
            return _run_route(core, name, ctx, *args)
        finally:
            LOG_CONTEXT.prefix = before
    return _run_route(core, name, ctx, *args)


def _run_route(core: Core, name: str, ctx: MsgContext, *args: str | int) -> int:
    engine = core.engine
    if engine is None:
        return route_fault(name, ctx, KemiError("no config engine is active"))
    try:
        if args:
            return normalize_result(engine.run(name, ctx, *args))  # type: ignore[call-arg]
        result = engine.run(name, ctx)
        # normalize_result's two usual answers without its call: a route returning nothing
        # (1) or an int (itself)
        if result is None:
            return 1
        return result if result.__class__ is int else normalize_result(result)
    except Exception as exc:  # noqa: BLE001 - a script fault never leaves the route
        return route_raised(name, ctx, exc)


def route_raised(name: str, ctx: MsgContext, exc: Exception) -> int:
    """What an exception out of ``engine.run`` of route ``name`` means (run_route's answer):
    KSR.x.exit() 1, KSR.x.drop() 0 with ``ctx.dropped`` set, anything else a fault (-1,
    ``route_fault``). The dispatcher calls the engine itself for a request and comes here."""
    if isinstance(exc, ScriptExit):
        return 1
    if isinstance(exc, ScriptDrop):
        ctx.dropped = True
        return 0
    return route_fault(name, ctx, exc)


def route_fault(name: str, ctx: MsgContext, exc: BaseException) -> int:
    """Log a fault of route ``name`` once, in one line, and record it in ``ctx.fault``; -1.

    A KemiError (ScriptError and the native engine's faults) carries its place in its text
    (``file:line: reason``); any other exception is a bug below the script and is described by
    its innermost frame. No traceback goes to the log (a message could trigger it, and a log
    is no place for one per message): the exception (or the Python error a ScriptError was
    raised from) rides along as ``kemi_exception``, and test fixtures show its traceback.
    """
    if isinstance(exc, RecursionError):
        text = f"route {name} recursed too deeply (a route calling itself?)"
    elif isinstance(exc, KemiError):
        text = str(exc) or type(exc).__name__
    else:
        text = brief_error(exc)
    cause = exc.__cause__ if isinstance(exc, KemiError) and exc.__cause__ is not None else exc
    log.error("error in %s: %s", name, text, extra={**SCRIPT_FAULT, "kemi_exception": cause})
    if ctx.fault is None:
        ctx.fault = text.splitlines()[0] if text else name
    return -1


def event_handler(core: Core, event: str, callback: str = "") -> tuple[str, tuple[str, ...]] | None:
    """How the script handles event route ``event`` (``xhttp:request``): the native engine's
    ``event_route[event]``; for KEMI engines the module's ``event_callback`` (else
    ``kemi.event_route_callback``), called with the event name. None when it has none."""
    engine = core.engine
    if engine is None:
        return None
    if engine.name == "native":
        name = f"event_route[{event}]"
        return (name, ()) if engine.has_route(name) else None
    fn = callback or core.config.kemi_callbacks.get("event_route_callback") or ""
    if fn and engine.has_route(fn):
        return fn, (event,)
    return None
