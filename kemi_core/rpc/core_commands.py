"""Core RPC commands: core.version, core.uptime, core.psx, system.listMethods, ..."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

from kemi_core import __version__
from kemi_core.runtime.core import Core
from kemi_core.stats import CoreStats, register_stats_commands


def _version(core: Core, params: list[Any]) -> str:
    """Kamailio's shape: ``name version (machine/system)``."""
    return f"kemi {__version__} ({platform.machine()}/{platform.system().lower()})"


def _uptime(core: Core, params: list[Any]) -> dict[str, Any]:
    now = time.time()
    return {"now": time.ctime(now), "up_since": time.ctime(core.started_at),
            "uptime": int(now - core.started_at)}


def _psx(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    procs = [{"IDX": 0, "PID": os.getpid(), "DSC": "main process - control socket"}]
    for rank, pid in sorted(getattr(core, "worker_pids", {}).items()):
        procs.append({"IDX": rank, "PID": pid, "DSC": f"udp/tcp receiver child={rank - 1}"})
    return procs


def _list_methods(core: Core, params: list[Any]) -> list[str]:
    return sorted(core.rpc_commands)


def _method_help(core: Core, params: list[Any]) -> str:
    if not params or params[0] not in core.rpc_commands:
        raise ValueError("usage: system.methodHelp <command>")
    return core.rpc_commands[params[0]].doc or "(no help)"


def _modules(core: Core, params: list[Any]) -> list[str]:
    return list(core.loaded_modules)


def _engine(core: Core, params: list[Any]) -> dict[str, Any]:
    return {"engine": core.config.engine_name,
            "kemi_exports": len(core.registry)}


def register_core_commands(core: Core) -> None:
    """The core's RPC commands, and its statistics (declared here, before any fork)."""
    core.stats = CoreStats(core)
    register_stats_commands(core)
    core.add_rpc("core.version", _version, "kemi version")
    core.add_rpc("core.uptime", _uptime, "time since start")
    core.add_rpc("core.psx", _psx, "the server's processes")
    core.add_rpc("core.modules", _modules, "loaded modules")
    core.add_rpc("core.engine", _engine, "active config engine")
    core.add_rpc("system.listMethods", _list_methods, "every RPC command")
    core.add_rpc("system.methodHelp", _method_help, "help text of one command")
