"""app_lua: kemi's ``lua`` config engine (Kamailio's app_lua KEMI engine, on lupa).

``loadmodule "app_lua.so"``, ``modparam("app_lua", "load", "/path/script.lua")`` and
``cfgengine "lua"``. The script defines ``ksr_request_route()`` (and optionally
``ksr_reply_route()``, ``ksr_onsend_route()`` and callbacks named to ``KSR.tm.t_on_*``) and calls
``KSR.<module>.<function>(...)`` or the legacy ``sr.*`` API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core.api import hookimpl
from kemi_engine_lua.engine import LuaEngine, LuaSettings
from kemi_engine_lua.module import MODULE, AppLua

if TYPE_CHECKING:
    from kemi_core.api import Core, EngineSpec

__all__ = ["AppLua", "LuaEngine", "LuaSettings"]


def _app(core: Core) -> AppLua:
    return core.require(MODULE, AppLua)


@hookimpl
def mod_register(core: Core) -> None:
    core.provide(MODULE, AppLua(core))


@hookimpl
def sr_kemi_eng_register(core: Core) -> list[EngineSpec]:
    return _app(core).engine_specs()


@hookimpl
def mod_init(core: Core) -> None:
    _app(core).mod_init()
