"""Stateful proxy load: SIPp UAC -> server (Lua script, KSR.tm.t_relay) -> SIPp UAS.

kemi and Kamailio 5.6 run the SAME kamailio.cfg and Lua script with one worker (children=1),
one after the other in this one run. For each, the call rate steps up until a step fails
(< 99.5% of calls successful, or < 95% of the asked rate achieved); the last good step is the
max sustainable rate. Server CPU per call (user+system of its process tree) is measured at a
common rate both sustain. SIPp shares the machine's two cores with the server, as in the
issue's reference figures. The last line printed is one JSON object with the figures.

    python bench/stateful.py [--seconds 15] [--rates 500,1000,2000,3000,4000,5000,6000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import KAMAILIO_MPATH, Proc, kamailio_available, tree_cpu_seconds, wait_udp_answer  # noqa: E402

from kemi_core.testing.process import free_port, kemi_executable  # noqa: E402
from kemi_core.testing.sipp import SippUas, run_sipp, sipp_available  # noqa: E402

LUA = """
function ksr_request_route()
    if KSR.maxfwd.process_maxfwd(10) < 0 then
        KSR.sl.send_reply(483, "Too Many Hops")
        return
    end
    KSR.pv.sets("$du", "sip:127.0.0.1:{uas_port}")
    if KSR.tm.t_relay() < 0 then
        KSR.sl.send_reply(500, "Server error")
    end
end
"""

CFG = """#!KAMAILIO
debug=0
log_stderror=yes
fork=yes
children=1
auto_aliases=no
listen=udp:127.0.0.1:{port}
mpath="{mpath}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""


def step(name: str, port: int, work: Path, rate: int, seconds: int, pid: int) -> dict:
    cpu0, t0 = tree_cpu_seconds(pid), time.monotonic()
    res = run_sipp(f"127.0.0.1:{port}", work, scenario="uac", calls=rate * seconds, rate=rate,
                   timeout=seconds * 3 + 30, name=f"{name}_{rate}",
                   extra=["-d", "0", "-l", str(max(rate * 4, 100))])
    cpu1, t1 = tree_cpu_seconds(pid), time.monotonic()
    ok, failed = res.successful, res.failed
    total = ok + failed
    achieved = ok / (t1 - t0)
    good = total > 0 and ok / max(total, rate * seconds) >= 0.995 and achieved >= 0.95 * rate
    return {"rate": rate, "ok": ok, "failed": failed, "calls_per_s": round(achieved, 1),
            "cpu_us_per_call": round((cpu1 - cpu0) / ok * 1e6, 1) if ok else None,
            "sustained": good}


def run_server(name: str, args: list[str], port: int, work: Path, rates: list[int],
               seconds: int) -> dict:
    proc = Proc(args, work / f"{name}.log", cwd=work)
    steps = []
    try:
        if not wait_udp_answer(port):
            raise RuntimeError(f"{name} did not answer; see {work / (name + '.log')}")
        for rate in rates:
            r = step(name, port, work, rate, seconds, proc.pid)
            steps.append(r)
            print(f"  {name:9} {rate:6}/s asked: {r['ok']:7} ok {r['failed']:6} failed "
                  f"{r['calls_per_s']:8}/s  {r['cpu_us_per_call']} us CPU/call  "
                  f"{'ok' if r['sustained'] else 'NOT sustained'}", flush=True)
            if not r["sustained"] or not proc.alive():
                break
            time.sleep(2)  # let retransmission timers of the step drain
    finally:
        proc.stop()
    sustained = [s for s in steps if s["sustained"]]
    return {"server": name, "steps": steps,
            "max_sustained_calls_per_s": max((s["rate"] for s in sustained), default=0)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rates", default="500,1000,2000,3000,4000,5000,6000")
    opts = parser.parse_args()
    rates = [int(x) for x in opts.rates.split(",")]
    if not sipp_available():
        print(json.dumps({"error": "sipp not installed (apt-get install sip-tester)"}))
        return 1
    results = []
    with tempfile.TemporaryDirectory(prefix="kemi-bench-") as tmp:
        work = Path(tmp)
        servers = [("kemi", lambda cfg: [*kemi_executable(), "run", "-f", str(cfg)])]
        if kamailio_available():
            servers.append(("kamailio", lambda cfg: ["kamailio", "-f", str(cfg), "-DD", "-E",
                                                     "-w", str(work), "-Y", str(work),
                                                     "-P", str(work / "kamailio.pid")]))
        else:
            print("kamailio 5.6 with app_lua not installed: measuring kemi alone")
        for name, make_args in servers:
            uas_port, port = free_port(), free_port()
            script = work / f"{name}.lua"
            script.write_text(LUA.replace("{uas_port}", str(uas_port)))
            cfg = work / f"{name}.cfg"
            cfg.write_text(CFG.format(port=port, mpath=KAMAILIO_MPATH, script=script))
            with SippUas(work, uas_port, name=f"uas_{name}", extra=["-aa"]):
                results.append(run_server(name, make_args(cfg), port, work, rates, opts.seconds))
    figures: dict = {"seconds_per_step": opts.seconds, "results": results}
    by = {r["server"]: r for r in results}
    if "kamailio" in by:
        k, m = by["kemi"], by["kamailio"]
        if m["max_sustained_calls_per_s"]:
            figures["rate_ratio_kemi_over_kamailio"] = round(
                k["max_sustained_calls_per_s"] / m["max_sustained_calls_per_s"], 2)
        common = [s["rate"] for s in k["steps"] if s["sustained"]]
        common = [r for r in common if any(s["rate"] == r and s["sustained"] for s in m["steps"])]
        if common:
            r = max(common)
            kc = next(s["cpu_us_per_call"] for s in k["steps"] if s["rate"] == r)
            mc = next(s["cpu_us_per_call"] for s in m["steps"] if s["rate"] == r)
            figures["cpu_compared_at_rate"] = r
            figures["cpu_ratio_kemi_over_kamailio"] = round(kc / mc, 2) if kc and mc else None
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
