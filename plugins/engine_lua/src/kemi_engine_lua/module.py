"""app_lua as a kemi module: its parameters, start-up checks and engine spec.

The module's state for one Core is an :class:`AppLua` object, provided as the service
``app_lua`` so every hook reaches it through the core it is given.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from kemi_core.api import REPLY_ROUTE, REQUEST_ROUTE, EngineSpec, ModuleError, check_script
from kemi_engine_lua.engine import LuaEngine, LuaSettings
from kemi_engine_lua.rpc import register_rpcs
from kemi_engine_lua.runtime import DEFAULT_LUA_VERSION, LUA_MODULES, WATCH_COUNT

if TYPE_CHECKING:
    from kemi_core.api import Core

log = logging.getLogger("kemi.app_lua")

MODULE = "app_lua"


class AppLua:
    """The module's state for one Core (created at loadmodule, in the main process)."""

    def __init__(self, core: Core) -> None:
        self.core = core
        dp = core.declare_param
        dp(MODULE, "load", str, multi=True, existing_file=True,
           doc="Lua script with the routing functions; repeat to load several, in order "
               "(a relative path is read against the config file's directory)")
        dp(MODULE, "reload", int, 1, doc="1: the app_lua.reload RPC may reload the script")
        dp(MODULE, "log_mode", int, 0, doc="bit 1: log each KSR function as it is resolved")
        dp(MODULE, "register", str, multi=True,
           doc="deprecated (Kamailio < 5.1): every sr.<module> is available anyway")
        dp(MODULE, "lua_version", str, DEFAULT_LUA_VERSION,
           doc=f"kemi extra: Lua to embed, one of {', '.join(LUA_MODULES)}")
        register_rpcs(core, self)

    # ---- parameters ----------------------------------------------------------------------
    def settings(self) -> LuaSettings:
        core = self.core
        cbs = core.config.kemi_callbacks
        return LuaSettings(
            scripts=tuple(core.resolve_path(p) for p in core.modparam(MODULE, "load")),
            lua_version=str(core.modparam(MODULE, "lua_version")).strip().lower(),
            log_mode=int(core.modparam(MODULE, "log_mode")),
            request_route=cbs.get("request_route_callback") or REQUEST_ROUTE,
            reply_route=cbs.get("reply_route_callback") or REPLY_ROUTE,
            watch_count=WATCH_COUNT if getattr(core.config, "watchdog_timeout", 0) > 0 else 0,
        )

    def allow_reload(self) -> bool:
        return int(self.core.modparam(MODULE, "reload")) != 0

    # ---- hooks ---------------------------------------------------------------------------
    def mod_init(self) -> None:
        registered = self.core.modparam(MODULE, "register")
        if registered:
            log.warning("app_lua: modparam \"register\" (%s) is deprecated and has no effect: "
                        "KSR.* and sr.* reach every loaded module", ", ".join(registered))
        settings = self.settings()
        if settings.lua_version not in LUA_MODULES:
            raise ModuleError(f"app_lua: lua_version {settings.lua_version!r} is not one of "
                              f"{', '.join(LUA_MODULES)}")
        check_script(self.core, MODULE, "lua", ",".join(settings.scripts),
                     lambda: LuaEngine(self.core, settings).load(), "/path/to/script.lua")

    def engine_factory(self, core: Core) -> LuaEngine:
        return LuaEngine(core, self.settings())

    def engine_specs(self) -> list[EngineSpec]:
        return [EngineSpec("lua", self.engine_factory,
                           "Routing logic in Lua (lupa; Lua 5.4 unless lua_version says otherwise)")]

