"""The internet-scale model of docs/internet-scale.md: what 10 million registrations and a
given call rate ask of kemi nodes and of PostgreSQL, extrapolated from what bench/cluster.py
measured on 2-3 nodes; and a simulation of how the dispatcher's hash spreads calls over 100
proxies (the real ds_hash over random Call-IDs).

    python bench/scale_model.py [--bench cluster.json] [--registrations 10000000]
                                [--reregister 3600] [--calls-per-user-hour 0.2]

``--bench`` reads the JSON line bench/cluster.py printed (its measured CPU costs); without it
the figures recorded in docs/internet-scale.md are used. The model is linear: CPU per message
measured at a few hundred calls a second, multiplied out. It ignores what linear models ignore
(cache effects, lock contention in PostgreSQL, network), which is why its headroom factor is 2.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugins" / "kemi_dispatcher"
                    / "src"))
from kemi_dispatcher.hashing import ds_hash  # noqa: E402

#: Measured by bench/cluster.py on this project's 2-core VM (docs/internet-scale.md), kemi:
#: CPU microseconds per call through dispatcher + proxy (all nodes' processes), per REGISTER on
#: a proxy (db_mode 3), PostgreSQL's CPU per call (one lookup) and per REGISTER, bytes per row.
DEFAULTS = {"call_cpu_us": 2340.0, "register_cpu_us": 750.0, "pg_call_cpu_us": 115.0,
            "pg_register_cpu_us": 250.0, "bytes_per_row": 508.0}
HEADROOM = 2.0  # run cores at half load: bursts, a failed node's share, re-registration storms


def from_bench(path: Path) -> dict[str, float]:
    data = json.loads(path.read_text().strip().splitlines()[-1])
    out = dict(DEFAULTS)
    kemi = data.get("summary", {}).get("kemi", {})
    if kemi.get("cluster_cpu_us"):
        out["call_cpu_us"] = float(kemi["cluster_cpu_us"])
        rate = kemi.get("cpu_compared_at_rate")
        steps = data["results"]["kemi_cluster"]["steps"]
        pg = next((s["pg_cpu_us_per_call"] for s in steps if s["rate"] == rate), None)
        if pg:
            out["pg_call_cpu_us"] = float(pg)
    reg = data.get("registrations", {}).get("kemi", {})
    for src, dst in (("cpu_us_per_register", "register_cpu_us"),
                     ("pg_cpu_us_per_register", "pg_register_cpu_us"),
                     ("bytes_per_row", "bytes_per_row")):
        if reg.get(src):
            out[dst] = float(reg[src])
    return out


def model(registrations: int, reregister: int, calls_per_user_hour: float,
          cost: dict[str, float], cores_per_node: int) -> dict[str, float]:
    reg_rate = registrations / reregister
    call_rate = registrations * calls_per_user_hour / 3600
    kemi_cores = (reg_rate * cost["register_cpu_us"] + call_rate * cost["call_cpu_us"]) / 1e6
    pg_cores = (reg_rate * cost["pg_register_cpu_us"] + call_rate * cost["pg_call_cpu_us"]) / 1e6
    return {"register_per_s": round(reg_rate), "calls_per_s": round(call_rate),
            "kemi_cores_busy": round(kemi_cores, 1),
            "kemi_nodes": math.ceil(kemi_cores * HEADROOM / cores_per_node),
            "pg_cores_busy": round(pg_cores, 1),
            "location_table_gb": round(registrations * cost["bytes_per_row"] / 1e9, 1)}


def hash_spread(destinations: int, calls: int, seed: int = 1) -> dict[str, float]:
    """Calls per destination when alg 0 hashes random Call-IDs over ``destinations``."""
    rng = random.Random(seed)
    counts = [0] * destinations
    for _ in range(calls):
        callid = f"{rng.getrandbits(64):016x}-{rng.getrandbits(32):08x}@10.{rng.randrange(256)}.1.1"
        counts[ds_hash(callid) % destinations] += 1
    mean = calls / destinations
    return {"destinations": destinations, "calls": calls, "max_over_mean": round(max(counts) / mean, 3),
            "min_over_mean": round(min(counts) / mean, 3)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--bench", type=Path)
    p.add_argument("--registrations", type=int, default=10_000_000)
    p.add_argument("--reregister", type=int, default=3600, help="seconds between re-REGISTERs")
    p.add_argument("--calls-per-user-hour", type=float, default=0.2)
    p.add_argument("--cores-per-node", type=int, default=8)
    opts = p.parse_args()
    cost = from_bench(opts.bench) if opts.bench else dict(DEFAULTS)
    rows = {}
    for rereg in sorted({opts.reregister, 600, 120}, reverse=True):
        rows[f"reregister_{rereg}s"] = model(opts.registrations, rereg,
                                             opts.calls_per_user_hour, cost, opts.cores_per_node)
    for name, row in rows.items():
        print(f"{name}: {row}")
    spread = hash_spread(100, 200_000)
    print(f"alg 0 over 100 proxies: {spread}")
    print(json.dumps({"inputs": cost, "headroom": HEADROOM, "model": rows,
                      "hash_spread": spread}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
