"""app_jsdt's RPC commands: reload and api_list (they run in the main process)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core.api import api_list, script_exports

if TYPE_CHECKING:
    from kemi_core.api import Core
    from kemi_engine_jsdt.module import AppJsdt


def register_rpcs(core: Core, app: AppJsdt) -> None:
    core.add_rpc("app_jsdt.reload", lambda c, p: c.rpc_reload_engine("jsdt"),
                 "Load and check the JavaScript file again; every worker switches to it before "
                 "its next message. On error nothing changes and the error is returned "
                 "(the core's reload, as cfgengine.reload).")
    core.add_rpc("app_jsdt.api_list", lambda c, p: api_list(script_exports(c.registry)),
                 "Every KSR function a JavaScript file can call, with parameter and return kinds.")
