"""app_jsdt's RPC commands: reload and api_list (they run in the main process)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kemi_engine_jsdt.resolver import Resolver

if TYPE_CHECKING:
    from kemi_core.api import Core
    from kemi_engine_jsdt.module import AppJsdt


def register_rpcs(core: Core, app: AppJsdt) -> None:
    core.add_rpc("app_jsdt.reload", lambda c, p: c.rpc_reload_engine("jsdt"),
                 "Load and check the JavaScript file again; every worker switches to it before "
                 "its next message. On error nothing changes and the error is returned "
                 "(the core's reload, as cfgengine.reload).")
    core.add_rpc("app_jsdt.api_list", lambda c, p: rpc_api_list(c),
                 "Every KSR function a JavaScript file can call, with parameter and return kinds.")


class _NoCall:
    """Holder for a resolver used only to list exports (never calls them)."""

    ctx = None

    def failed(self, exc: BaseException) -> None:
        raise exc


def rpc_api_list(core: Core) -> dict[str, Any]:
    exports = Resolver(core.registry, _NoCall(), core.log).exports()
    methods = [{
        "func": exp.qualified_name,
        "module": exp.module,
        "name": exp.name,
        "params": [k.value for k in exp.params],
        "ret": exp.returns.value,
        "signature": exp.signature(with_return=False),
    } for exp in exports]
    return {"msize": len(methods), "methods": methods}
