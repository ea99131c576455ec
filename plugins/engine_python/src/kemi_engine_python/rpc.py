"""RPC commands: ``app_python.reload`` and ``app_python.api_list`` (Kamailio's names).

app_python and app_python3 both answer to ``app_python.*`` as in Kamailio 5.6; app_python3s
also answers to ``app_python3s.*``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kemi_core.api import ScriptError
from kemi_core.api import api_list as api_listing

if TYPE_CHECKING:
    from kemi_core.api import Core
    from kemi_engine_python.modules import PythonEngineModule


def register_rpcs(core: Core, module: PythonEngineModule) -> None:
    prefixes = ["app_python"]
    if module.name == "app_python3s":
        prefixes.append("app_python3s")

    def reload(core_: Core, params: list[Any]) -> dict[str, Any]:
        """The core's reload (as cfgengine.reload): checked here, then every worker."""
        try:
            answer = core_.rpc_reload_engine("python")
        except ScriptError as exc:
            raise ScriptError(f"reload refused, the old script keeps running: {exc}")
        answer["script"] = module.get_state().options.path
        return answer

    def api_list(core_: Core, params: list[Any]) -> dict[str, Any]:
        return api_listing(core_.registry, with_return=True)

    for prefix in prefixes:
        if f"{prefix}.reload" in core.rpc_commands:
            continue
        core.add_rpc(f"{prefix}.reload", reload,
                     "Import the Python routing script again; on error the old one stays.")
        core.add_rpc(f"{prefix}.api_list", api_list, "List the KEMI functions the script can call.")
