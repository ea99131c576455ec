"""Stateless load: SIPp sends OPTIONS, the Lua script answers 200 with KSR.sl.send_reply.

kemi and Kamailio 5.6 (Debian's ``kamailio`` + ``kamailio-lua-modules``) run the SAME
kamailio.cfg and Lua script, one after the other in this one run, each with one worker
(children=1), at the same fixed rate. Reported per server: requests/s achieved and server CPU
microseconds per request (user+system of the whole process tree, from /proc), and the ratio.
The last line printed is one JSON object with the figures.

    python bench/stateless.py [--rate 2000] [--seconds 10] [--interleave ROUNDS]

With ``--interleave ROUNDS`` both servers stay up and the SIPp runs alternate between them
(bench/interleave.py): the figure is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    KAMAILIO_MPATH,
    Proc,
    kamailio_args,
    kamailio_available,
    tree_cpu_seconds,
    wait_udp_answer,
)
from interleave import interleaved  # noqa: E402

from kemi_core.testing.process import free_port, kemi_executable  # noqa: E402
from kemi_core.testing.sipp import run_sipp, sipp_available  # noqa: E402

HERE = Path(__file__).resolve().parent

LUA = """
function ksr_request_route()
    if KSR.is_OPTIONS() then
        KSR.sl.send_reply(200, "OK")
        return
    end
    KSR.sl.send_reply(404, "Not Here")
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
loadmodule "sl.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""


def measure(name: str, args: list[str], port: int, work: Path, rate: int, seconds: int) -> dict:
    proc = Proc(args, work / f"{name}.log", cwd=work)
    try:
        if not wait_udp_answer(port):
            raise RuntimeError(f"{name} did not answer; see {work / (name + '.log')}")
        time.sleep(0.5)
        cpu0, t0 = tree_cpu_seconds(proc.pid), time.monotonic()
        res = run_sipp(f"127.0.0.1:{port}", work, scenario=HERE / "scenarios" / "options_uac.xml",
                       calls=rate * seconds, rate=rate, timeout=seconds * 4 + 30, name=name,
                       extra=["-l", str(rate * 2)])
        cpu1, t1 = tree_cpu_seconds(proc.pid), time.monotonic()
    finally:
        proc.stop()
    ok = res.successful
    return {"server": name, "requests_ok": ok, "requests_failed": res.failed,
            "requests_per_s": round(ok / (t1 - t0), 1),
            "cpu_us_per_request": round((cpu1 - cpu0) / ok * 1e6, 2) if ok else None}


def run_interleaved(rate: int, seconds: int, rounds: int) -> int:
    with tempfile.TemporaryDirectory(prefix="kemi-bench-") as tmp:
        work = Path(tmp)
        (work / "bench.lua").write_text(LUA)
        servers = []
        for name, make_args in (("kemi", lambda cfg: [*kemi_executable(), "run", "-f", str(cfg)]),
                                ("kamailio", kamailio_args(work))):
            port = free_port()
            cfg = work / f"{name}.cfg"
            cfg.write_text(CFG.format(port=port, mpath=KAMAILIO_MPATH, script=work / "bench.lua"))
            servers.append((name, make_args, cfg, port, 0))
        res = interleaved(servers, work, rate, seconds, rounds,
                          str(HERE / "scenarios" / "options_uac.xml"), ["-l", str(rate * 2)],
                          "request", with_uas=False)
    print(f"median CPU ratio kemi / Kamailio: {res['median_ratio']}")
    print(json.dumps({"interleaved": res}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--interleave", type=int, default=0, metavar="ROUNDS",
                        help="both servers up, ROUNDS alternated runs (median ratio)")
    opts = parser.parse_args()
    if not sipp_available():
        print(json.dumps({"error": "sipp not installed (apt-get install sip-tester)"}))
        return 1
    if opts.interleave:
        return run_interleaved(opts.rate, opts.seconds, opts.interleave)
    results = []
    with tempfile.TemporaryDirectory(prefix="kemi-bench-") as tmp:
        work = Path(tmp)
        (work / "bench.lua").write_text(LUA)
        servers = [("kemi", lambda cfg: [*kemi_executable(), "run", "-f", str(cfg)])]
        if kamailio_available():
            servers.append(("kamailio", kamailio_args(work)))
        else:
            print("kamailio 5.6 with app_lua not installed: measuring kemi alone "
                  "(apt-get install kamailio kamailio-lua-modules)")
        for name, make_args in servers:
            port = free_port()
            cfg = work / f"{name}.cfg"
            cfg.write_text(CFG.format(port=port, mpath=KAMAILIO_MPATH, script=work / "bench.lua"))
            r = measure(name, make_args(cfg), port, work, opts.rate, opts.seconds)
            results.append(r)
            print(f"{name:9} {r['requests_ok']:7} ok {r['requests_failed']:5} failed  "
                  f"{r['requests_per_s']:9} req/s  {r['cpu_us_per_request']} us CPU/request")
    figures: dict = {"rate_asked": opts.rate, "seconds": opts.seconds, "results": results}
    by = {r["server"]: r for r in results}
    if "kamailio" in by and by["kamailio"]["cpu_us_per_request"] and by["kemi"]["cpu_us_per_request"]:
        figures["cpu_ratio_kemi_over_kamailio"] = round(
            by["kemi"]["cpu_us_per_request"] / by["kamailio"]["cpu_us_per_request"], 2)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
