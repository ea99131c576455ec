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
from kemi_engine_lua.module import AppLua

if TYPE_CHECKING:
    from kemi_core.api import Core, EngineSpec

__all__ = ["AppLua", "LuaEngine", "LuaSettings"]

#: The module state for the Core that loaded this module (one per process; hooks such as
#: child_init get no core, so it is kept here).
_app: AppLua | None = None


def _current() -> AppLua:
    if _app is None:
        raise RuntimeError("app_lua: mod_register was not called")
    return _app


@hookimpl
def mod_register(core: Core) -> None:
    global _app
    _app = AppLua(core)


@hookimpl
def sr_kemi_eng_register() -> list[EngineSpec]:
    return _current().engine_specs()


@hookimpl
def mod_init(core: Core) -> None:
    _current().mod_init()


@hookimpl
def child_init(rank: int) -> None:
    _current().child_init(rank)
