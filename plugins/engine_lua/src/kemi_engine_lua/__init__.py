"""app_lua: kemi's ``lua`` config engine (Kamailio's app_lua KEMI engine, on lupa).

``loadmodule "app_lua.so"``, ``modparam("app_lua", "load", "/path/script.lua")`` and
``cfgengine "lua"``. The script defines ``ksr_request_route()`` (and optionally
``ksr_reply_route()``, ``ksr_onsend_route()`` and callbacks named to ``KSR.tm.t_on_*``) and calls
``KSR.<module>.<function>(...)`` or the legacy ``sr.*`` API.
"""

from __future__ import annotations

from kemi_core.api import app_hooks
from kemi_engine_lua.engine import LuaEngine, LuaSettings
from kemi_engine_lua.module import MODULE, AppLua

__all__ = ["AppLua", "LuaEngine", "LuaSettings"]

# The module's state is an AppLua, provided as the service "app_lua"; the hooks reach it there.
mod_register, sr_kemi_eng_register, mod_init = app_hooks(MODULE, AppLua)
