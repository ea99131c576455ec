"""RPC commands: ``app_python.reload`` and ``app_python.api_list`` (Kamailio's names).

app_python and app_python3 both answer to ``app_python.*`` as in Kamailio 5.6; app_python3s
also answers to ``app_python3s.*``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kemi_core.api import ScriptError
from kemi_engine_python.ksr import signature_text

if TYPE_CHECKING:
    from kemi_core.api import Core
    from kemi_engine_python.modules import PythonEngineModule


def register_rpcs(core: Core, module: PythonEngineModule) -> None:
    prefixes = ["app_python"]
    if module.name == "app_python3s":
        prefixes.append("app_python3s")

    def reload(_core: Core, params: list[Any]) -> dict[str, Any]:
        state = module.get_state()
        old = state.image.generation if state.image is not None else None
        try:
            image = state.reload()
        except ScriptError as exc:
            raise ScriptError(f"reload refused, the old script keeps running: {exc}")
        return {"script": image.path, "old_generation": old, "generation": image.generation}

    def api_list(core_: Core, params: list[Any]) -> dict[str, Any]:
        methods = [
            {"func": exp.qualified_name, "module": exp.module, "name": exp.name,
             "params": [k.value for k in exp.params], "ret": exp.returns.value,
             "signature": signature_text(exp)}
            for exp in core_.registry
        ]
        return {"msize": len(methods), "methods": methods}

    for prefix in prefixes:
        if f"{prefix}.reload" in core.rpc_commands:
            continue
        core.add_rpc(f"{prefix}.reload", reload,
                     "Import the Python routing script again; on error the old one stays.")
        core.add_rpc(f"{prefix}.api_list", api_list, "List the KEMI functions the script can call.")
