"""The ``lua`` config engine: one Lua runtime per process running the routing script.

Reload is the core's (``app_lua.reload`` / ``cfgengine.reload``): the main process loads a
fresh engine to check the script, and each worker builds a fresh engine at its next message
from the exact script texts the main process checked (``snapshot`` / ``load_snapshot``).
"""

from __future__ import annotations

import json
import logging
import types
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import attrs

from kemi_core.api import (
    REPLY_ROUTE,
    REQUEST_ROUTE,
    ScriptDrop,
    ScriptError,
    ScriptExit,
    read_script,
)
from kemi_engine_lua.cbridge import engine_run
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
    """Runs Lua callbacks for messages; see :class:`kemi_core.api.Engine`."""

    name = "lua"
    def __init__(self, core: Core, settings: LuaSettings) -> None:
        self.core = core
        self.settings = settings
        #: The context of the route running now; bound KSR functions read it on each call.
        self.ctx: MsgContext | None = None
        #: The name of the route running now (the watchdog's report reads it: a compiled run
        #: leaves no Python frame naming it)
        self.route: str | None = None
        self.resolver = Resolver(core.registry, self, core.log.getChild("app_lua"), settings.log_mode)
        self.state: LuaState | None = None
        self.sources: list[str] = []  # the script texts the runtime was built from
        self._lua = lupa_module(settings.lua_version)
        if type(self).run is LuaEngine.run:
            # run compiled: a route whose runner is made runs without a Python frame of run's
            # own (the dispatcher calls it for every message); the rest is run's below
            compiled = engine_run(self, types.MethodType(LuaEngine.run, self))
            if compiled is not None:
                self.__dict__["run"] = compiled

    # ---- loading ------------------------------------------------------------------------
    def build(self, scripts: Sequence[str] | None = None,
              sources: Sequence[str] | None = None) -> LuaState:
        """A new, checked runtime (does not replace the running one)."""
        return build_state(self._lua, self.resolver, scripts or self.settings.scripts,
                           self.settings.request_route, sources, self.settings.watch_count)

    def load(self) -> None:
        """Build the runtime from the script files (ScriptError with file:line on errors; the
        running runtime, if any, stays)."""
        if not self.settings.scripts:
            raise ScriptError("app_lua: no script to load (set modparam(\"app_lua\", \"load\", ...))")
        sources = [read_script(path, "Lua script") for path in self.settings.scripts]
        self.load_sources(sources)

    def load_sources(self, sources: list[str]) -> None:
        self.state = self.build(sources=sources)
        self.sources = sources

    def snapshot(self) -> bytes:
        """The script texts this engine runs (what the workers of a reload load)."""
        return json.dumps(self.sources).encode()

    def load_snapshot(self, data: bytes) -> None:
        self.load_sources(json.loads(data))

    def reload(self) -> None:
        """Re-read the script files in this process; on error the old runtime stays."""
        self.load()
        log.info("app_lua: reloaded %s", ", ".join(self.settings.scripts))

    def current_location(self) -> str | None:
        """Where the script is now (file:line), for the debugger's cfgtrace."""
        return self.state.script_location() if self.state is not None else None

    # ---- running ------------------------------------------------------------------------
    def has_route(self, name: str) -> bool:
        state = self.state
        if state is None:
            self.load()
            state = self.state
            assert state is not None
        known = state.routes.get(name)  # the answer kept since the script was loaded
        return state.has(name) if known is None else known

    def run(self, name: str, ctx: MsgContext, *args: str | int) -> Any:
        """Run Lua function ``name`` (with ``args``: an event callback's event name); returns
        what it returned (the core normalises it), 1 after the core's KSR.x.exit() (what
        run_route makes of ScriptExit: no exception raised through the frames per exit)."""
        state = self.state
        if state is None:
            self.load()
            state = self.state
            assert state is not None
        prev, prev_route = self.ctx, self.route
        self.ctx, self.route = ctx, name
        try:
            result = (state.runners.get(name) or state.runner(name))(*args)
        finally:
            self.ctx, self.route = prev, prev_route
        # A route's result is one value (nil, a number...); only a failure comes as a tuple
        # (a script cannot hold a Python tuple: the KSR functions return str, int or nothing).
        if result.__class__ is not tuple:
            return result
        self._failed(state, name, *result)

    def _failed(self, state: LuaState, name: str, code: int, value: Any, trace: Any) -> NoReturn:
        """Raise what a failed run means: ScriptExit/ScriptDrop as they are, else ScriptError
        with the Lua traceback (file:line)."""
        if code == 2:
            state.forget_routes()  # has_route may have said yes before the script removed it
            raise ScriptError(f"{self.settings.scripts[-1]}: Lua function {name}() is not "
                              "defined (a callback name given to the script, e.g. KSR.tm.t_on_*?)")
        if isinstance(value, ScriptExit | ScriptDrop):
            raise value
        text = clean_trace(trace if isinstance(trace, str) else str(value), self.settings.scripts)
        if isinstance(value, BaseException):
            # The Lua traceback names the script lines; the exception a KSR function raised
            # is named in the first line and rides along (raise ... from) for test fixtures.
            first_line, _, rest = text.partition("\n")
            text = f"{first_line} ({type(value).__name__})" + (f"\n{rest}" if rest else "")
            raise ScriptError(text) from value
        raise ScriptError(text or repr(value))
