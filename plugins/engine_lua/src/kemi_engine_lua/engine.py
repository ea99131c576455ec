"""The ``lua`` config engine: one Lua runtime per process running the routing script.

Cross-process reload: the main process checks a new script (``app_lua.reload``), then bumps a
counter in shared memory; each worker compares that counter with the version it runs at the
start of every request/reply route (one int read) and rebuilds its runtime when it moved.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from kemi_core.api import (
    REPLY_ROUTE,
    REQUEST_ROUTE,
    SCRIPT_FAULT,
    ScriptDrop,
    ScriptError,
    ScriptExit,
)
from kemi_engine_lua.resolver import Resolver
from kemi_engine_lua.runtime import (
    DEFAULT_LUA_VERSION,
    LuaState,
    build_state,
    clean_trace,
    lupa_module,
)

if TYPE_CHECKING:
    from kemi_core.api import Core, MsgContext

log = logging.getLogger("kemi.app_lua")


class Counter(Protocol):
    """The reload generation shared by every process (a kemi_core ReloadChannel), with the
    script texts the main process checked for it."""

    @property
    def value(self) -> int: ...

    def fetch(self) -> tuple[int, bytes]: ...

    def publish(self, payload: bytes) -> int: ...


class LocalCounter:
    """A counter for a single process (tests, or an engine built without mod_init): a reload
    there reads the files again."""

    def __init__(self) -> None:
        self.value = 0

    def fetch(self) -> tuple[int, bytes]:
        return self.value, b""

    def publish(self, payload: bytes) -> int:
        self.value += 1
        return self.value


@attrs.frozen
class LuaSettings:
    """The app_lua modparams an engine needs."""

    scripts: tuple[str, ...]
    lua_version: str = DEFAULT_LUA_VERSION
    log_mode: int = 0
    request_route: str = REQUEST_ROUTE
    reply_route: str = REPLY_ROUTE
    #: Lua instructions between two watchdog polls (0: no hook; see runtime.WATCH_COUNT)
    watch_count: int = 0


class LuaEngine:
    """Runs Lua callbacks for messages; see :class:`kemi_core.engine.Engine`."""

    name = "lua"

    def __init__(self, core: Core, settings: LuaSettings, counter: Counter | None = None) -> None:
        self.core = core
        self.settings = settings
        self.counter: Counter = counter if counter is not None else LocalCounter()
        #: The context of the route running now; bound KSR functions read it on each call.
        self.ctx: MsgContext | None = None
        self.resolver = Resolver(core.registry, self, core.log.getChild("app_lua"), settings.log_mode)
        self.state: LuaState | None = None
        self.version = -1  # the counter value this process's runtime was loaded at
        self._lua = lupa_module(settings.lua_version)
        self._reload_routes = frozenset({settings.request_route, settings.reply_route})

    # ---- loading ------------------------------------------------------------------------
    def build(self, scripts: Sequence[str] | None = None,
              sources: Sequence[str] | None = None) -> LuaState:
        """A new, checked runtime (does not replace the running one)."""
        return build_state(self._lua, self.resolver, scripts or self.settings.scripts,
                           self.settings.request_route, sources, self.settings.watch_count)

    def load(self) -> None:
        version = self.counter.value
        self.state = self.build()
        self.version = version

    def reload(self) -> None:
        """Replace the runtime with one built from the scripts' current contents; on error the
        old runtime stays and ScriptError is raised."""
        version = self.counter.value
        state = self.build()  # raises before anything changes
        self.state = state
        self.version = version
        log.info("app_lua: reloaded %s (version %d)", ", ".join(self.settings.scripts), version)

    def _reload_from_counter(self) -> LuaState:
        """Another process asked for a reload: load the script texts it checked and published
        (never the files, which may have changed since), or keep the old script on error."""
        version, payload = self.counter.fetch()
        sources = json.loads(payload) if payload else None
        try:
            self.state = self.build(sources=sources)
            log.info("app_lua: script reloaded in this process (version %d)", version)
        except ScriptError as exc:
            log.error("app_lua: reload to version %d failed, keeping the old script: %s",
                      version, exc)
        self.version = version  # do not retry on every message
        assert self.state is not None
        return self.state

    def current_location(self) -> str | None:
        """Where the script is now (file:line), for the debugger's cfgtrace."""
        return self.state.script_location() if self.state is not None else None

    # ---- running ------------------------------------------------------------------------
    def has_route(self, name: str) -> bool:
        if self.state is None:
            self.load()
        assert self.state is not None
        return self.state.has(name)

    def run(self, name: str, ctx: MsgContext) -> int:
        state = self.state
        if state is None:
            self.load()
            state = self.state
            assert state is not None
        elif name in self._reload_routes and self.counter.value != self.version:
            state = self._reload_from_counter()
        prev = self.ctx
        self.ctx = ctx
        try:
            code, value, trace = state.run(name)
        finally:
            self.ctx = prev
        if code == 0:
            return route_result(value)
        if code == 2:
            self.core.log.error("app_lua: the Lua script has no function %s() to run "
                                "(a callback name given to the script, e.g. KSR.tm.t_on_*?)", name,
                                extra=SCRIPT_FAULT)
            raise ScriptError(f"{self.settings.scripts[-1]}: Lua function {name}() is not defined")
        return self._failed(name, ctx, value, trace)

    def _failed(self, name: str, ctx: MsgContext, value: Any, trace: Any) -> int:
        if isinstance(value, ScriptExit):
            return 1
        if isinstance(value, ScriptDrop):
            ctx.dropped = True
            return 0
        text = clean_trace(trace if isinstance(trace, str) else str(value), self.settings.scripts)
        first = text.splitlines()[0] if text else repr(value)
        # The Lua traceback names the script lines; an exception a KSR function raised is in
        # its first line (type and text). No Python traceback in the log (a message could
        # trigger it); the exception rides along for test fixtures (kemi_exception).
        extra: dict[str, object] = dict(SCRIPT_FAULT)
        if isinstance(value, BaseException):
            first_line, _, rest = text.partition("\n")
            text = f"{first_line} ({type(value).__name__})" + (f"\n{rest}" if rest else "")
            extra["kemi_exception"] = value
        log.error("app_lua: error in %s(): %s", name, text, extra=extra)
        ctx.extra["script_error"] = first
        return -1


def route_result(value: Any) -> int:
    """A Lua callback's return value as Kamailio's int: nothing/true -> 1, false -> -1."""
    if value is None or value is True:
        return 1
    if value is False:
        return -1
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return 1
