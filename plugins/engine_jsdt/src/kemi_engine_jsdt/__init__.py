"""app_jsdt: kemi's ``jsdt`` config engine (Kamailio's app_jsdt KEMI engine, on QuickJS-ng).

``loadmodule "app_jsdt.so"``, ``modparam("app_jsdt", "load", "/path/script.js")`` and
``cfgengine "jsdt"``. The script defines ``ksr_request_route()`` (and optionally
``ksr_reply_route()``, ``ksr_onsend_route()`` and callbacks named to ``KSR.tm.t_on_*``) and calls
``KSR.<module>.<function>(...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core.api import app_hooks, hookimpl
from kemi_engine_jsdt.engine import JsdtEngine, JsdtSettings
from kemi_engine_jsdt.module import MODULE, AppJsdt

if TYPE_CHECKING:
    from kemi_core.api import Core, KemiExport

__all__ = ["AppJsdt", "JsdtEngine", "JsdtSettings"]

# The module's state is an AppJsdt, provided as the service "app_jsdt"; the hooks reach it there.
mod_register, sr_kemi_eng_register, mod_init = app_hooks(MODULE, AppJsdt)


@hookimpl
def sr_kemi_modules_add(core: Core) -> list[KemiExport]:
    return core.require(MODULE, AppJsdt).exports()


@hookimpl
def write_script_stubs(core: Core, directory: str) -> list[str]:
    """``KSR.d.ts``: TypeScript declarations of every KSR function, for editors of JS scripts."""
    from kemi_engine_jsdt.stubs import write_typescript_stubs

    return [str(write_typescript_stubs(core.registry, directory))]
