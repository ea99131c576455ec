"""The server's processes as the main process sees them: rank, pid, role, CPU time, restarts.

Read from /proc when asked (an RPC, a scrape), never on the message path.
"""

from __future__ import annotations

import os
from typing import Any

from kemi_core.metrics import ProcessSample

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0.0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def process_samples(core: Any) -> list[ProcessSample]:
    """The main process (rank 0) and each worker the server supervises."""
    restarts: dict[int, int] = getattr(core, "worker_restarts", {})
    out = [ProcessSample(0, os.getpid(), "main", cpu_seconds(os.getpid()))]
    for rank, pid in sorted(getattr(core, "worker_pids", {}).items()):
        out.append(ProcessSample(rank, pid, "worker", cpu_seconds(pid), restarts.get(rank, 0)))
    return out
