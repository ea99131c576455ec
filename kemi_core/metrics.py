"""Statistics in the Prometheus text exposition format (version 0.0.4), as xhttp_prom names them.

Each statistic ``group:name`` becomes ``<prefix><group>_<name>`` (prefix ``kamailio_`` by
default, xhttp_prom's ``xhttp_prom_beginning``), characters a metric name may not hold turned
into ``_`` (xhttp_prom turns ``-`` into ``_``), with ``# HELP`` and ``# TYPE`` lines (counter or
gauge). Per-process figures carry labels in Prometheus's style (``rank``, ``role``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from kemi_core.counters import Statistic

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_NOT_NAME = re.compile(r"[^a-zA-Z0-9_:]")
_NOT_LABEL = re.compile(r"[^a-zA-Z0-9_]")


@attrs.frozen
class ProcessSample:
    """One process's figures: its rank (0: main), pid, role, CPU seconds, restarts."""

    rank: int
    pid: int
    role: str
    cpu_seconds: float
    restarts: int = 0


def metric_name(prefix: str, group: str, name: str) -> str:
    full = _NOT_NAME.sub("_", f"{prefix}{group}_{name}")
    return full if not full[:1].isdigit() else f"_{full}"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: dict[str, object]) -> str:
    inner = ",".join(f'{_NOT_LABEL.sub("_", k)}="{_label_value(v)}"' for k, v in pairs.items())
    return "{" + inner + "}"


def render(stats: Iterable[Statistic], prefix: str = "kamailio_",
           processes: Iterable[ProcessSample] = ()) -> str:
    """The exposition text of ``stats`` (in the given order) and the per-process samples."""
    lines: list[str] = []
    for stat in stats:
        name = metric_name(prefix, stat.group, stat.name)
        kind = "counter" if stat.kind == "counter" else "gauge"
        lines.append(f"# HELP {name} {_escape_help(stat.doc or f'{stat.group}:{stat.name}')}")
        lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name} {int(stat.value)}")
    procs = list(processes)
    if procs:
        cpu = metric_name(prefix, "process", "cpu_seconds_total")
        restarts = metric_name(prefix, "process", "restarts_total")
        lines.append(f"# HELP {cpu} CPU time (user + system) of each server process")
        lines.append(f"# TYPE {cpu} counter")
        for p in procs:
            lines.append(f"{cpu}{_labels({'rank': p.rank, 'role': p.role})} {p.cpu_seconds:.2f}")
        lines.append(f"# HELP {restarts} times the worker of this rank was restarted")
        lines.append(f"# TYPE {restarts} counter")
        for p in procs:
            lines.append(f"{restarts}{_labels({'rank': p.rank, 'role': p.role})} {p.restarts}")
    return "\n".join(lines) + "\n"
