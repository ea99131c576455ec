"""Statistics RPCs over the counters the core keeps.

The dispatcher keeps per-process counters in ``core.shared_vars["stats"]``: a flat dict
``name -> int`` (requests, replies, parse_errors, ...), shown here as group ``core``. A value
that is itself a dict is a further group (``{"sl": {"sent": 3}}`` -> ``sl:sent``), so modules
may add theirs. Counters are per process, unlike Kamailio's shared-memory statistics.
"""

from __future__ import annotations

from typing import Any

from kemi_core.api import Core


def _table(core: Core) -> dict[str, dict[str, Any]]:
    """group -> {name -> the dict holding it}; values read live."""
    raw = core.shared_vars.get("stats")
    if not isinstance(raw, dict):
        return {}
    groups: dict[str, dict[str, Any]] = {}
    for name, value in raw.items():
        if isinstance(value, dict):
            groups[str(name)] = {str(k): value for k, v in value.items() if isinstance(v, int)}
        elif isinstance(value, int):
            groups.setdefault("core", {})[str(name)] = raw
    return groups


def _select(core: Core, params: list[Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(group, name, holder) for each statistic the ``all`` / ``group:`` / ``name`` /
    ``group.name`` / ``group:name`` selectors pick."""
    table = _table(core)
    keys = [str(p) for p in params] or ["all"]
    out: list[tuple[str, str, dict[str, Any]]] = []
    seen: set[tuple[str, str]] = set()

    def add(group: str, name: str) -> None:
        if (group, name) not in seen and name in table.get(group, {}):
            seen.add((group, name))
            out.append((group, name, table[group][name]))

    for key in keys:
        if key == "all":
            for group, names in table.items():
                for name in names:
                    add(group, name)
        elif key.endswith(":"):
            for name in table.get(key[:-1], {}):
                add(key[:-1], name)
        elif ":" in key or "." in key:
            group, _, name = key.replace(":", ".", 1).partition(".")
            add(group, name)
        else:
            for group, names in table.items():
                if key in names:
                    add(group, key)
    return out


def rpc_get_statistics(core: Core, params: list[Any]) -> list[str]:
    return [f"{g}:{n} = {h[n]}" for g, n, h in _select(core, params)]


def rpc_fetch(core: Core, params: list[Any]) -> dict[str, str]:
    return {f"{g}.{n}": str(h[n]) for g, n, h in _select(core, params)}


def rpc_fetchn(core: Core, params: list[Any]) -> dict[str, int]:
    return {f"{g}.{n}": int(h[n]) for g, n, h in _select(core, params)}


def rpc_reset(core: Core, params: list[Any]) -> dict[str, int]:
    if not params:
        raise ValueError("stats.reset_statistics needs statistic names (or all / group:)")
    picked = _select(core, params)
    for _g, n, holder in picked:
        holder[n] = 0
    return {"reset": len(picked)}


def rpc_clear(core: Core, params: list[Any]) -> list[str]:
    if not params:
        raise ValueError("stats.clear_statistics needs statistic names (or all / group:)")
    picked = _select(core, params)
    lines = [f"{g}:{n} = {h[n]}" for g, n, h in picked]
    for _g, n, holder in picked:
        holder[n] = 0
    return lines


def rpc_aliases_list(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    return [{"host": a.host, "port": a.port} for a in core.config.aliases]
