"""The contract between the core and a config engine (lua, python, native, third-party).

A module returns :class:`EngineSpec` records from ``sr_kemi_eng_register``; ``cfgengine``
picks one by name. The factory builds an :class:`Engine` in each worker. On each message the
core calls ``engine.run(...)`` directly (no pluggy on the hot path).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
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


@runtime_checkable
class Engine(Protocol):
    """One loaded routing script in one process."""

    name: str

    def load(self) -> None:
        """Load and check the script (raise ScriptError with file:line on failure). Called
        once in the main process (to refuse a broken script before start) and in each worker."""

    def has_route(self, name: str) -> bool:
        """Whether the script defines the callback ``name`` (e.g. ksr_reply_route)."""

    def run(self, name: str, ctx: MsgContext) -> int:
        """Run callback ``name`` for ``ctx``. Returns the route's int result (1 when the
        script returns nothing). Raises ScriptError if ``name`` is not defined. A script error
        is logged by the engine with file:line and reported as return value -1."""

    def reload(self) -> None:
        """Replace the script with the file's current contents; on error keep the old one and
        raise ScriptError."""


@attrs.frozen
class EngineSpec:
    """An engine a module offers: ``cfgengine "<name>"`` selects it."""

    name: str
    #: Builds the engine for ``core`` (the module's params are read from core).
    factory: Callable[[Core], Engine]
    doc: str = ""
