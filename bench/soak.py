"""Soak: many calls through kemi's tm (SIPp UAC -> kemi -> SIPp UAS), then check that every
transaction was freed (tm.stats: current == 0 after the wait timer) and that the worker's RSS
stayed flat (sampled during the run). The last line printed is one JSON object.

    python bench/soak.py [--calls 100000] [--rate 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import KAMAILIO_MPATH, tree_pids  # noqa: E402
from stateful import CFG as STATEFUL_CFG  # noqa: E402
from stateful import ENGINES, LUA  # noqa: E402

from kemi_core.testing.process import KemiProcess, free_port  # noqa: E402
from kemi_core.testing.sipp import SippUas, run_sipp, sipp_available  # noqa: E402

# The stateful benchmark's proxy script and config (Lua engine), with a short wt_timer so the
# last transactions are gone soon after the run.
CFG = STATEFUL_CFG + ENGINES["lua"][3] + 'modparam("tm", "wt_timer", 2000)\n'


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1000)
    opts = parser.parse_args()
    if not sipp_available():
        print(json.dumps({"error": "sipp not installed"}))
        return 1
    with tempfile.TemporaryDirectory(prefix="kemi-soak-") as tmp:
        work = Path(tmp)
        port, uas_port = free_port(), free_port()
        (work / "soak.lua").write_text(LUA.replace("{uas_port}", str(uas_port)))
        (work / "soak.cfg").write_text(CFG.format(port=port, mpath=KAMAILIO_MPATH,
                                                  script=work / "soak.lua"))
        with SippUas(work, uas_port, name="uas"), KemiProcess(work / "soak.cfg", work) as srv:
            assert srv.proc is not None
            worker = [p for p in tree_pids(srv.proc.pid) if p != srv.proc.pid][0]
            samples: list[tuple[float, int]] = []
            done = threading.Event()

            def sample() -> None:
                t0 = time.monotonic()
                while not done.wait(5):
                    samples.append((round(time.monotonic() - t0), rss_kb(worker)))

            threading.Thread(target=sample, daemon=True).start()
            res = run_sipp(f"127.0.0.1:{port}", work, scenario="uac", calls=opts.calls,
                           rate=opts.rate, timeout=opts.calls // opts.rate * 3 + 60, name="uac",
                           extra=["-d", "0", "-l", str(opts.rate * 4)])
            done.set()
            # The last transactions are freed after their wait timers (wt_timer, T4 for Timer K):
            # poll tm.stats for up to 40 s.
            deadline = time.monotonic() + 40
            while True:
                stats = srv.rpc("tm.stats")
                if stats.get("current") == 0 or time.monotonic() > deadline:
                    break
                time.sleep(1)
            rss_end = rss_kb(worker)
    first = samples[len(samples) // 5][1] if samples else 0  # after warm-up
    figures = {"calls": opts.calls, "rate": opts.rate, "ok": res.successful, "failed": res.failed,
               "tm_current_after": stats.get("current"),
               "tm_created": stats.get("created"), "tm_freed": stats.get("freed"),
               "rss_kb_warm": first,
               "rss_kb_end": rss_end, "rss_samples": samples}
    print(f"{res.successful} ok, {res.failed} failed; tm current after: "
          f"{figures['tm_current_after']}; worker RSS warm {first} kB -> end {rss_end} kB")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
