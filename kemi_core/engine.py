"""The contract between the core and a config engine (lua, python, native, third-party).

A module returns :class:`EngineSpec` records from ``sr_kemi_eng_register``; ``cfgengine``
picks one by name. The factory builds an :class:`Engine` in each process. On each message the
core calls ``engine.run(...)`` through ``core.run_route`` (no pluggy on the hot path).

What an engine does and what the core does:

* the engine loads the script (``load``), says which callbacks it defines (``has_route``) and
  runs one (``run``), letting :class:`ScriptExit` / :class:`ScriptDrop` (raised by
  ``KSR.x.exit()`` / ``KSR.x.drop()``) and any script error propagate (an engine that sees
  the exit itself may return 1 instead, the int ``run_route`` gives an exit);
* the core turns the result into Kamailio's int (:func:`normalize_result`), maps exit, drop
  and a script fault to what the dispatcher, onsend and tm do (``core.run_route``), and
  manages reload across workers (``cfgengine.reload``: a fresh engine's ``load()`` checks the
  script in the main process, every worker builds a new engine at its next message).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from kemi_core.kemi.exports import KemiExport
    from kemi_core.runtime.context import MsgContext
    from kemi_core.runtime.core import Core

#: Kamailio's defaults for kemi.request_route_callback and friends.
REQUEST_ROUTE = "ksr_request_route"
REPLY_ROUTE = "ksr_reply_route"
ONSEND_ROUTE = "ksr_onsend_route"
EVENT_ROUTE = "ksr_event_route"  # unset by default in Kamailio; kept for module events


class ScriptExit(Exception):  # noqa: N818 - mirrors KSR.x.exit()
    """Raised by KSR.x.exit(): the running route ends here, successfully."""


class ScriptDrop(Exception):  # noqa: N818 - mirrors KSR.x.drop()
    """Raised by KSR.x.drop(): the route ends and the message is not sent on."""


def script_exit(ctx: MsgContext) -> None:
    """Stop the route here; the route counts as successful (``KSR.x.exit()``, native ``exit``)."""
    raise ScriptExit()


def script_drop(ctx: MsgContext) -> None:
    """Stop the route and do not send the message on (``KSR.x.drop()``, native ``drop``)."""
    ctx.dropped = True
    raise ScriptDrop()


def flow_exports() -> list[KemiExport]:
    """The records of ``KSR.x.exit`` and ``KSR.x.drop`` (the core exports them; an engine that
    runs with a registry without the core's exports, as in unit tests, may add these)."""
    from kemi_core.kemi.exports import ReturnKind, export

    return [export("x", "exit", script_exit, "", ReturnKind.NONE),
            export("x", "drop", script_drop, "", ReturnKind.NONE)]


def normalize_result(value: Any) -> int:
    """Kamailio's int for what a KEMI function or a route returned, the same in every engine:
    ``> 0`` true, ``< 0`` false, ``0`` stops the script.

    ========================  ======================================================
    ``int``                   itself (``0`` stays ``0``)
    ``True`` / ``None``       ``1`` (success; a function or route that returns nothing)
    ``False``                 ``-1``
    ``float``                 its sign kept: ``2.0`` -> 2, ``0.5`` -> 1, ``-0.5`` -> -1,
                              ``0.0`` -> 0 (NaN -> -1)
    anything else             ``1`` when truthy, else ``-1`` (``""`` -> -1)
    ========================  ======================================================
    """
    cls = value.__class__
    if cls is int:
        return value  # type: ignore[no-any-return]
    if value is None or value is True:
        return 1
    if value is False:
        return -1
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return -1
        if value > 0:
            return max(1, int(value)) if value < 2**63 else 2**63 - 1
        if value < 0:
            return min(-1, int(value)) if value > -(2**63) else -(2**63)
        return 0
    return 1 if value else -1


def normalize_bool(value: Any) -> bool:
    """A BOOL export's result: True/False as they are, anything else by Kamailio's sign rule
    (``normalize_result(value) > 0``: ``-1`` and ``None``... see there)."""
    if value is True or value is False:
        return value  # type: ignore[no-any-return]
    return normalize_result(value) > 0


def normalize_xval(value: Any) -> str | int | None:
    """An XVAL export's result: str, int or None as they are; bool -> 1/0 (Kamailio has no
    bool value), bytes decoded as UTF-8 (bad bytes replaced), anything else its ``str()``."""
    cls = value.__class__
    if value is None or cls is str or cls is int:
        return value  # type: ignore[no-any-return]
    if isinstance(value, int):  # bool and int subclasses
        return int(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


@runtime_checkable
class Engine(Protocol):
    """One loaded routing script in one process."""

    name: str

    def load(self) -> None:
        """Load and check the script; raise ScriptError with ``file:line: reason`` on failure.
        Called in the main process (to refuse a broken script before start and to check a
        reload) and in each worker (on a fresh engine built by the spec's factory)."""

    def has_route(self, name: str) -> bool:
        """Whether the script defines the callback ``name`` (e.g. ksr_reply_route)."""

    def run(self, name: str, ctx: MsgContext) -> int:
        """Run callback ``name`` for ``ctx`` and return what it returned (the core normalises
        it with :func:`normalize_result`). Event callbacks (``core.run_event_route``) are called
        as ``run(name, ctx, event_name)``: an engine that runs KEMI scripts takes that extra
        argument and passes it to the script's function (Lua ``ksr_xhttp_event(evname)``). Let ScriptExit/ScriptDrop propagate; raise for a
        script error (ScriptError with ``file:line: reason`` where the engine knows the
        place) and for a callback that is not defined: the core logs it, counts it and
        answers a request with 500."""

    def reload(self) -> None:
        """Replace the script with the file's current contents in this process; on error keep
        the old one and raise ScriptError. The core's cross-worker reload does not need it (it
        builds fresh engines); an engine may implement it as ``self.load()``."""


@attrs.frozen
class EngineSpec:
    """An engine a module offers: ``cfgengine "<name>"`` selects it."""

    name: str
    #: Builds the engine for ``core`` (the module's params are read from core).
    factory: Callable[[Core], Engine]
    doc: str = ""
