"""``kemi top``'s view: rates computed from two ``kemi.stats`` snapshots, drawn with rich.

Sans-IO: snapshots in (dicts as the RPC returns them), rich renderables out; the command in
cli_top.py fetches and refreshes.
"""

from __future__ import annotations

from typing import Any

import attrs
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

Snapshot = dict[str, Any]

TRAFFIC = [
    ("requests received", "core:rcv_requests"),
    ("  INVITE", "core:rcv_requests_invite"),
    ("  ACK", "core:rcv_requests_ack"),
    ("  BYE", "core:rcv_requests_bye"),
    ("  CANCEL", "core:rcv_requests_cancel"),
    ("  OPTIONS", "core:rcv_requests_options"),
    ("  REGISTER", "core:rcv_requests_register"),
    ("requests sent", "kemi:sent_requests"),
    ("replies received", "core:rcv_replies"),
    *[(f"  {k}xx", f"core:rcv_replies_{k}xx") for k in range(1, 7)],
    ("replies sent", "kemi:sent_replies"),
    *[(f"  {k}xx", f"kemi:sent_replies_{k}xx") for k in range(1, 7)],
]
TRANSACTIONS = [
    ("in use", "tmx:inuse_transactions"),
    ("active", "tmx:active_transactions"),
    ("new (UAS)", "tmx:UAS_transactions"),
    ("new (UAC)", "tmx:UAC_transactions"),
    *[(f"final {k}xx", f"tmx:{k}xx_transactions") for k in range(2, 7)],
]
ERRORS = [
    ("script errors", "kemi:script_errors"),
    ("bad messages", "core:bad_msg_hdr"),
    ("bad R-URIs", "core:bad_URIs_rcvd"),
    ("dropped requests", "core:drop_requests"),
    ("dropped replies", "core:drop_replies"),
    ("forward errors", "core:err_requests"),
    ("worker restarts", "kemi:worker_restarts"),
]
#: Statistics that are levels, shown as they are (a rate of a level means nothing).
LEVELS = frozenset({"tmx:inuse_transactions", "tmx:active_transactions"})


@attrs.frozen
class Row:
    label: str
    total: int | None
    rate: float | None


def rate(prev: Snapshot | None, cur: Snapshot, key: str) -> float | None:
    """Events per second of ``key`` between two snapshots (None without a previous one)."""
    if prev is None:
        return None
    dt = cur["time"] - prev["time"]
    before, now = prev["statistics"].get(key), cur["statistics"].get(key)
    if dt <= 0 or before is None or now is None:
        return None
    return max(0.0, (now - before) / dt)  # a reset between the two reads shows 0, not < 0


def rows(prev: Snapshot | None, cur: Snapshot, spec: list[tuple[str, str]]) -> list[Row]:
    out = []
    stats = cur["statistics"]
    for label, key in spec:
        if key not in stats:
            continue
        out.append(Row(label, stats[key], None if key in LEVELS else rate(prev, cur, key)))
    return out


def cpu_percent(prev: Snapshot | None, cur: Snapshot) -> dict[int, float | None]:
    """Per rank: CPU use in % of one core between the snapshots (same pid only)."""
    before = {p["rank"]: p for p in (prev or {}).get("processes", [])}
    dt = cur["time"] - prev["time"] if prev else 0
    out: dict[int, float | None] = {}
    for p in cur["processes"]:
        old = before.get(p["rank"])
        if old is None or dt <= 0 or old["pid"] != p["pid"]:
            out[p["rank"]] = None
        else:
            out[p["rank"]] = max(0.0, (p["cpu_seconds"] - old["cpu_seconds"]) / dt * 100)
    return out


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _table(title: str, data: list[Row]) -> Table:
    table = Table(title=title, title_justify="left", expand=True, box=None, pad_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("/s", justify="right")
    table.add_column("total", justify="right")
    for row in data:
        table.add_row(row.label, _num(row.rate), f"{row.total:,}" if row.total is not None else "-")
    return table


def render(prev: Snapshot | None, cur: Snapshot, source: str) -> Group:
    """The whole screen for the latest snapshot ``cur`` (rates against ``prev``)."""
    up = int(cur.get("uptime", 0))
    head = Text(f"kemi top  {source}  up {up // 3600}:{up % 3600 // 60:02d}:{up % 60:02d}",
                style="bold")
    grid = Table.grid(expand=True, padding=(0, 2))
    grid.add_column(ratio=1)
    grid.add_column(ratio=1)
    right = Group(_table("Transactions", rows(prev, cur, TRANSACTIONS)),
                  Text(""), _table("Errors", rows(prev, cur, ERRORS)))
    grid.add_row(_table("Traffic", rows(prev, cur, TRAFFIC)), right)
    procs = Table(title="Processes", title_justify="left", expand=True, box=None)
    for name, justify in (("rank", "right"), ("pid", "right"), ("role", "left"),
                          ("CPU %", "right"), ("CPU s", "right"), ("restarts", "right")):
        procs.add_column(name, justify=justify)  # type: ignore[arg-type]
    cpu = cpu_percent(prev, cur)
    for p in cur["processes"]:
        procs.add_row(str(p["rank"]), str(p["pid"]), p["role"], _num(cpu.get(p["rank"])),
                      _num(p["cpu_seconds"], 2), str(p["restarts"]))
    return Group(head, Panel(grid), procs)
