"""app_lua's RPC commands: reload, list, api_list (they run in the main process)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kemi_core.api import ScriptError, api_list, script_exports

if TYPE_CHECKING:
    from kemi_core.api import Core
    from kemi_engine_lua.module import AppLua


def register_rpcs(core: Core, app: AppLua) -> None:
    core.add_rpc("app_lua.reload", lambda c, p: rpc_reload(app, c, p),
                 "Load and check the Lua script again; every worker switches to it before its "
                 "next message. On error nothing changes and the error is returned "
                 "(the core's reload, as cfgengine.reload).")
    core.add_rpc("app_lua.list", lambda c, p: rpc_list(app, c, p),
                 "The loaded Lua scripts and the current reload version.")
    core.add_rpc("app_lua.api_list", lambda c, p: rpc_api_list(app, c, p),
                 "Every KSR function a Lua script can call, with parameter and return kinds.")


def rpc_reload(app: AppLua, core: Core, params: list[Any]) -> dict[str, Any]:
    if not app.allow_reload():
        raise ScriptError("app_lua: reload is disabled (modparam reload is 0)")
    if params:
        # Kamailio takes a script index; kemi loads every script into one runtime, so any
        # valid index reloads them all.
        try:
            index = int(params[0])
        except (TypeError, ValueError):
            raise ScriptError(f"app_lua.reload: script index must be an integer, got {params[0]!r}")
        if not 0 <= index < len(app.settings().scripts):
            raise ScriptError(f"app_lua.reload: no script with index {index}")
    return core.rpc_reload_engine("lua")


def rpc_list(app: AppLua, core: Core, params: list[Any]) -> dict[str, Any]:
    version = core.engine_generation
    settings = app.settings()
    scripts = [{"index": i, "version": version, "script": path}
               for i, path in enumerate(settings.scripts)]
    return {"version": version, "lua_version": settings.lua_version, "scripts": scripts}


def rpc_api_list(app: AppLua, core: Core, params: list[Any]) -> dict[str, Any]:
    return api_list(script_exports(core.registry))
