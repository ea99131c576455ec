"""app_jsdt: kemi's ``jsdt`` config engine (Kamailio's app_jsdt KEMI engine, on QuickJS-ng).

``loadmodule "app_jsdt.so"``, ``modparam("app_jsdt", "load", "/path/script.js")`` and
``cfgengine "jsdt"``. The script defines ``ksr_request_route()`` (and optionally
``ksr_reply_route()``, ``ksr_onsend_route()`` and callbacks named to ``KSR.tm.t_on_*``) and calls
``KSR.<module>.<function>(...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core.api import hookimpl
from kemi_engine_jsdt.engine import JsdtEngine, JsdtSettings
from kemi_engine_jsdt.module import MODULE, AppJsdt

if TYPE_CHECKING:
    from kemi_core.api import Core, EngineSpec, KemiExport

__all__ = ["AppJsdt", "JsdtEngine", "JsdtSettings"]


def _app(core: Core) -> AppJsdt:
    return core.require(MODULE, AppJsdt)


@hookimpl
def mod_register(core: Core) -> None:
    core.provide(MODULE, AppJsdt(core))


@hookimpl
def sr_kemi_modules_add(core: Core) -> list[KemiExport]:
    return _app(core).exports()


@hookimpl
def sr_kemi_eng_register(core: Core) -> list[EngineSpec]:
    return _app(core).engine_specs()


@hookimpl
def mod_init(core: Core) -> None:
    _app(core).mod_init()


@hookimpl
def write_script_stubs(core: Core, directory: str) -> list[str]:
    """``KSR.d.ts``: TypeScript declarations of every KSR function, for editors of JS scripts."""
    from kemi_engine_jsdt.stubs import write_typescript_stubs

    return [str(write_typescript_stubs(core.registry, directory))]
