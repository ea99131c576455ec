"""The cluster's cost: calls through a dispatcher and two proxies vs one proxy alone.

Topologies, each run by kemi and then by Kamailio 5.6 from the SAME configs and Lua scripts as
the cluster tests (tests/cluster/configs: registrar proxies on usrloc db_mode 3 sharing a private
PostgreSQL, a dispatcher with round-robin and failover):

- ``one``: SIPp UAC -> proxy A (127.0.0.2) -> SIPp UAS;
- ``cluster``: SIPp UAC -> dispatcher (127.0.0.1) -> proxy A or B (127.0.0.2/.3) -> SIPp UAS.

Each call is INVITE/200/ACK/BYE through Record-Route (the proxies look the callee up in
PostgreSQL for each INVITE). The rate steps up until a step fails (< 99.5% successful, or < 95%
of the asked rate achieved); the last good step is the max sustainable rate. CPU per call is the
user+system time of the SIP servers' process trees, and PostgreSQL's apart, over the steps both
topologies held. Everything, SIPp, PostgreSQL and every node's workers, shares this machine's
cores, so a cluster on ONE machine cannot be faster than one proxy: the figures say what the extra
hop costs, not what more machines give. The last line printed is one JSON object.

    python bench/cluster.py [--seconds 10] [--rates 50,100,200,300,400,600,800]
                            [--engine kemi|kamailio|all] [--failover-only]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import tree_cpu_seconds  # noqa: E402

from kemi_core.testing.cluster import (  # noqa: E402
    Node,
    kamailio_cluster_available,
    location_database,
    loopback_available,
)
from kemi_core.testing.postgres import PostgresServer, unavailable_reason  # noqa: E402
from kemi_core.testing.process import free_port  # noqa: E402
from kemi_core.testing.sipp import SippUas, run_sipp, sipp_available  # noqa: E402
from kemi_core.testing.wait import wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "tests" / "cluster" / "configs"
SCENARIOS = ROOT / "tests" / "cluster" / "scenarios"


def node(name: str, engine: str, ip: str, kind: str, work: Path, **values: object) -> Node:
    script = "\n".join((CONFIGS / f"{n}.lua").read_text() for n in ("cluster", kind))
    return Node(name, engine, ip, free_port(), work / f"{engine}-{name}",
                (CONFIGS / f"{kind}.cfg").read_text(), script,
                {k.upper(): v for k, v in values.items()})


def step(entry: Node, servers: list[Node], pg: PostgresServer, work: Path, rate: int,
         seconds: int, name: str) -> dict:
    pids = [n.proc.proc.pid for n in servers if n.proc is not None and n.proc.proc is not None]
    pg_pid = pg.proc.pid if pg.proc is not None else None
    cpu0 = sum(tree_cpu_seconds(p) for p in pids)
    pg0 = tree_cpu_seconds(pg_pid) if pg_pid else 0.0
    t0 = time.monotonic()
    res = run_sipp(entry.address, work, scenario=SCENARIOS / "uac_call.xml",
                   calls=rate * seconds, rate=rate, timeout=seconds * 3 + 30,
                   name=f"{name}_{rate}", extra=["-s", "bob", "-l", str(max(rate * 4, 100))])
    elapsed = time.monotonic() - t0
    cpu = sum(tree_cpu_seconds(p) for p in pids) - cpu0
    pg_cpu = (tree_cpu_seconds(pg_pid) if pg_pid else 0.0) - pg0
    ok, failed = res.successful, res.failed
    achieved = ok / elapsed
    good = ok > 0 and ok / max(ok + failed, rate * seconds) >= 0.995 and achieved >= 0.95 * rate
    return {"rate": rate, "ok": ok, "failed": failed, "calls_per_s": round(achieved, 1),
            "cpu_us_per_call": round(cpu / ok * 1e6) if ok else None,
            "pg_cpu_us_per_call": round(pg_cpu / ok * 1e6) if ok else None,
            "sustained": good}


def run_topology(engine: str, topology: str, pg: PostgresServer, work: Path, rates: list[int],
                 seconds: int) -> dict:
    url = location_database(pg)
    a = node("a", engine, "127.0.0.2", "proxy", work, db_url=url, server_id=1)
    nodes = [a]
    entry = a
    if topology == "cluster":
        b = node("b", engine, "127.0.0.3", "proxy", work, db_url=url, server_id=2)
        ds_list = work / f"{engine}-dispatcher.list"
        ds_list.write_text(f"1 sip:{a.address} 0 0\n1 sip:{b.address} 0 0\n")
        entry = node("d", engine, "127.0.0.1", "dispatcher", work, list=ds_list)
        nodes = [a, b, entry]
    steps: list[dict] = []
    name = f"{engine}_{topology}"
    uas_port = free_port()
    try:
        for n in nodes:
            n.start()
        with SippUas(work, uas_port, scenario=SCENARIOS / "uas.xml", name=f"uas_{name}"):
            reg = run_sipp(a.address, work, scenario=SCENARIOS / "register.xml", calls=1,
                           name=f"reg_{name}", extra=["-s", "bob", "-key", "contact",
                                                      f"sip:bob@127.0.0.1:{uas_port}",
                                                      "-key", "expires", "3600"])
            if reg.successful != 1:
                raise RuntimeError(f"{name}: REGISTER failed:\n{reg.stdout[-2000:]}")
            if topology == "cluster":  # the first keepalives mark both proxies active
                wait_until(lambda: entry.kamcmd("dispatcher.list").count("FLAGS: AP") == 2, 20,
                           "both proxies active in the dispatcher")
            for rate in rates:
                r = step(entry, nodes, pg, work, rate, seconds, name)
                steps.append(r)
                print(f"  {name:18} {rate:5}/s asked: {r['ok']:6} ok {r['failed']:5} failed "
                      f"{r['calls_per_s']:7}/s  {r['cpu_us_per_call']} us CPU/call "
                      f"(+{r['pg_cpu_us_per_call']} PostgreSQL)  "
                      f"{'ok' if r['sustained'] else 'NOT sustained'}", flush=True)
                if not r["sustained"]:
                    break
                time.sleep(2)  # retransmission timers of the step drain
    finally:
        for n in nodes:
            n.stop()
    held = [s for s in steps if s["sustained"]]
    return {"engine": engine, "topology": topology, "steps": steps,
            "max_sustained_calls_per_s": max((s["rate"] for s in held), default=0)}


def failover(engine: str, pg: PostgresServer, work: Path) -> dict:
    """Seconds, measured with the cluster configs (keepalive every 1 s, tm fr_timer 3 s):
    proxy B stopped -> the dispatcher marks it inactive by keepalives alone (no calls);
    B started again -> marked active; and, B stopped but still marked active, how long the
    next call takes to complete through A (its first try at B waits for fr_timer)."""
    url = location_database(pg)
    a = node("fa", engine, "127.0.0.2", "proxy", work, db_url=url, server_id=1)
    b = node("fb", engine, "127.0.0.3", "proxy", work, db_url=url, server_id=2)
    ds_list = work / f"{engine}-failover.list"
    ds_list.write_text(f"1 sip:{a.address} 0 0\n1 sip:{b.address} 0 0\n")
    d = node("fd", engine, "127.0.0.1", "dispatcher", work, list=ds_list)

    def flags_of(n: Node) -> str:
        out = d.kamcmd("dispatcher.list")
        i = out.find(f"sip:{n.address}")
        return out[i:].split("FLAGS:", 1)[1].split()[0] if i >= 0 else "?"

    out: dict = {}
    uas_port = free_port()
    try:
        for n in (a, b, d):
            n.start()
        with SippUas(work, uas_port, scenario=SCENARIOS / "uas.xml", name=f"uas_f_{engine}"):
            run_sipp(a.address, work, scenario=SCENARIOS / "register.xml", calls=1,
                     name=f"freg_{engine}", extra=["-s", "bob", "-key", "contact",
                                                   f"sip:bob@127.0.0.1:{uas_port}",
                                                   "-key", "expires", "3600"])
            wait_until(lambda: flags_of(b) == "AP" and flags_of(a) == "AP", 20, "both up")
            b.stop()
            t0 = time.monotonic()
            wait_until(lambda: flags_of(b).startswith("I"), 60, "B marked down")
            out["down_detected_by_keepalives_s"] = round(time.monotonic() - t0, 2)
            b.start()
            t0 = time.monotonic()
            wait_until(lambda: flags_of(b) == "AP", 60, "B marked up")
            out["up_detected_by_keepalives_s"] = round(time.monotonic() - t0, 2)
            b.stop()
            d.kamcmd("dispatcher.ping_active", "0")  # B stays marked active: calls find out
            slowest = 0.0
            for i in range(2):  # round-robin: one of these two calls tries B first
                t0 = time.monotonic()
                res = run_sipp(d.address, work, scenario=SCENARIOS / "uac_call.xml", calls=1,
                               name=f"fcall_{engine}_{i}", extra=["-s", "bob"])
                if res.successful != 1:
                    raise RuntimeError(f"failover call failed:\n{res.stdout[-2000:]}")
                slowest = max(slowest, time.monotonic() - t0)
            out["call_through_dead_proxy_s"] = round(slowest, 2)
    finally:
        for n in (d, b, a):
            n.stop()
    print(f"  {engine} failover: {out}", flush=True)
    return out


def registrations(engine: str, pg: PostgresServer, work: Path, rate: int, seconds: int) -> dict:
    """One proxy, db_mode 3: ``rate`` REGISTERs a second for ``seconds``, each for a new user
    (an INSERT); CPU per REGISTER of the node and of PostgreSQL, and the table's bytes per row
    (heap and indexes): the inputs of the internet-scale model (docs/internet-scale.md)."""
    url = location_database(pg)
    dbname = url.rsplit("/", 1)[1]
    a = node("ra", engine, "127.0.0.2", "proxy", work, db_url=url, server_id=1)
    try:
        a.start()
        assert a.proc is not None and a.proc.proc is not None and pg.proc is not None
        pid, pg_pid = a.proc.proc.pid, pg.proc.pid
        cpu0, pg0, t0 = tree_cpu_seconds(pid), tree_cpu_seconds(pg_pid), time.monotonic()
        res = run_sipp(a.address, work, scenario=SCENARIOS / "register_many.xml",
                       calls=rate * seconds, rate=rate, timeout=seconds * 3 + 30,
                       name=f"regs_{engine}", extra=["-key", "expires", "3600",
                                                     "-l", str(rate * 4)])
        elapsed = time.monotonic() - t0
        cpu, pg_cpu = tree_cpu_seconds(pid) - cpu0, tree_cpu_seconds(pg_pid) - pg0
        rows = int(pg.psql(dbname, "SELECT count(*) FROM location").strip() or 0)
        size = int(pg.psql(dbname, "SELECT pg_total_relation_size('location')").strip() or 0)
    finally:
        a.stop()
    ok = res.successful
    out = {"rate": rate, "ok": ok, "failed": res.failed, "per_s": round(ok / elapsed, 1),
           "cpu_us_per_register": round(cpu / ok * 1e6) if ok else None,
           "pg_cpu_us_per_register": round(pg_cpu / ok * 1e6) if ok else None,
           "rows": rows, "bytes_per_row": round(size / rows) if rows else None}
    print(f"  {engine} registrations: {out}", flush=True)
    return out


def summary(results: dict[str, dict]) -> dict:
    """Per engine: cluster/one ratios of rate and CPU per call (at the highest rate both held),
    and kemi/Kamailio ratios per topology."""
    out: dict = {}
    for engine in {r["engine"] for r in results.values()}:
        one, cl = results.get(f"{engine}_one"), results.get(f"{engine}_cluster")
        if not one or not cl:
            continue
        entry: dict = {"one_max": one["max_sustained_calls_per_s"],
                       "cluster_max": cl["max_sustained_calls_per_s"]}
        if one["max_sustained_calls_per_s"]:
            entry["rate_ratio_cluster_over_one"] = round(
                cl["max_sustained_calls_per_s"] / one["max_sustained_calls_per_s"], 2)
        both = {s["rate"] for s in one["steps"] if s["sustained"]} & {
            s["rate"] for s in cl["steps"] if s["sustained"]}
        if both:
            rate = max(both)
            c1 = next(s for s in one["steps"] if s["rate"] == rate)
            c2 = next(s for s in cl["steps"] if s["rate"] == rate)
            entry.update({"cpu_compared_at_rate": rate, "one_cpu_us": c1["cpu_us_per_call"],
                          "cluster_cpu_us": c2["cpu_us_per_call"],
                          "cpu_ratio_cluster_over_one": round(
                              c2["cpu_us_per_call"] / c1["cpu_us_per_call"], 2)})
        out[engine] = entry
    if "kemi" in out and "kamailio" in out:
        out["kemi_over_kamailio"] = {
            t: round(results[f"kemi_{t}"]["max_sustained_calls_per_s"]
                     / results[f"kamailio_{t}"]["max_sustained_calls_per_s"], 2)
            for t in ("one", "cluster") if results[f"kamailio_{t}"]["max_sustained_calls_per_s"]}
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rates", default="50,100,200,300,400,600,800")
    parser.add_argument("--engine", choices=["kemi", "kamailio", "all"], default="all")
    parser.add_argument("--register-rate", type=int, default=100,
                        help="REGISTERs per second for the registrations figures")
    parser.add_argument("--failover-only", action="store_true",
                        help="only the failover timings, not the load steps")
    opts = parser.parse_args()
    rates = [int(x) for x in opts.rates.split(",")]
    problems = [r for r in (None if sipp_available() else "sipp is not installed",
                            unavailable_reason(),
                            None if loopback_available("127.0.0.3") else "no 127.0.0.3")
                if r]
    if problems:
        print(json.dumps({"error": "; ".join(problems)}))
        return 1
    engines = ["kemi", "kamailio"] if opts.engine == "all" else [opts.engine]
    if "kamailio" in engines and kamailio_cluster_available():
        print(f"kamailio skipped: {kamailio_cluster_available()}")
        engines.remove("kamailio")
    results: dict[str, dict] = {}
    failovers: dict[str, dict] = {}
    regs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="kemi-bench-cluster-") as tmp, \
            PostgresServer() as pg:
        work = Path(tmp)
        for engine in engines:
            if not opts.failover_only:
                for topology in ("one", "cluster"):
                    print(f"{engine}, {topology}:", flush=True)
                    results[f"{engine}_{topology}"] = run_topology(engine, topology, pg, work,
                                                                   rates, opts.seconds)
                regs[engine] = registrations(engine, pg, work, opts.register_rate,
                                             opts.seconds)
            failovers[engine] = failover(engine, pg, work)
    print(json.dumps({"seconds_per_step": opts.seconds, "results": results,
                      "summary": summary(results), "registrations": regs,
                      "failover": failovers}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
