"""app_jsdt as a kemi module: its parameters, start-up checks and engine spec.

The module's state for one Core is an :class:`AppJsdt` object, provided as the service
``app_jsdt`` so every hook reaches it through the core it is given.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import attrs

from kemi_core.api import REQUEST_ROUTE, EngineSpec, KemiExport, check_script
from kemi_engine_jsdt.engine import JsdtEngine, JsdtSettings
from kemi_engine_jsdt.exports import JsdtCalls
from kemi_engine_jsdt.rpc import register_rpcs

if TYPE_CHECKING:
    from kemi_core.api import Core

log = logging.getLogger("kemi.app_jsdt")

MODULE = "app_jsdt"


class AppJsdt:
    """The module's state for one Core (created at loadmodule, in the main process)."""

    def __init__(self, core: Core) -> None:
        self.core = core
        dp = core.declare_param
        dp(MODULE, "load", str, "", existing_file=True,
           doc="JavaScript file with the routing functions (a relative path is read against "
               "the config file's directory)")
        dp(MODULE, "mode", int, 1,
           doc="Kamailio: 1 sets up Duktape's require() for Node.js-style modules; accepted, "
               "kemi's QuickJS engine offers no require() (load one self-contained file)")
        dp(MODULE, "log_mode", int, 0, doc="kemi extra: bit 1 logs each KSR function as it is "
                                           "first resolved")
        register_rpcs(core, self)
        self.calls = JsdtCalls(core, MODULE, self.settings)
        for fn in self.calls.cfg_functions():
            core.add_cfg_function(fn)

    # ---- parameters ----------------------------------------------------------------------
    def settings(self) -> JsdtSettings:
        core = self.core
        return JsdtSettings(
            script=core.resolve_path(str(core.modparam(MODULE, "load"))),
            request_route=core.config.kemi_callbacks.get("request_route_callback") or REQUEST_ROUTE,
            log_resolved=bool(int(core.modparam(MODULE, "log_mode")) & 1),
        )

    # ---- hooks ---------------------------------------------------------------------------
    def mod_init(self) -> None:
        settings = self.settings()
        # Not the cfgengine but a file for jsdt_run & co: no request route needed.
        def check() -> None:
            JsdtEngine(self.core, attrs.evolve(settings, request_route="")).load()
        check_script(self.core, MODULE, "jsdt", settings.script, check, "/path/to/script.js")

    def exports(self) -> list[KemiExport]:
        return self.calls.exports()

    def engine_factory(self, core: Core) -> JsdtEngine:
        return JsdtEngine(core, self.settings())

    def engine_specs(self) -> list[EngineSpec]:
        return [EngineSpec("jsdt", self.engine_factory,
                           "Routing logic in JavaScript (QuickJS-ng), as Kamailio's app_jsdt")]
