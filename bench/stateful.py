"""Stateful proxy load: SIPp UAC -> server (KSR.tm.t_relay / t_relay()) -> SIPp UAS.

The same proxy logic (Max-Forwards check, $du to the UAS, stateful relay) is written for four
config engines: Lua (app_lua), Python (app_python3, Kamailio 5.6's module, param "load"),
JavaScript (app_jsdt: Duktape in Kamailio, QuickJS-ng in kemi) and the native kamailio.cfg
routing language. For each engine kemi and Kamailio 5.6 run the SAME
kamailio.cfg and script with one worker (children=1), one after the other in this one run. For
each, the call rate steps up until a step fails (< 99.5% of calls successful, or < 95% of the
asked rate achieved); the last good step is the max sustainable rate. Server CPU per call
(user+system of its process tree) is measured at a common rate both sustain. SIPp shares the
machine's two cores with the server, as in the issue's reference figures. The last line printed
is one JSON object with the figures, one section per engine.

    python bench/stateful.py [--engine lua,python,jsdt,native|all] [--seconds 15]
                             [--rates 500,1000,2000,3000,4000,5000,6000]
    python bench/stateful.py --statistics-cost --engine lua --rates 1000 --seconds 10
    python bench/stateful.py --interleave 3 --rate 1500 --seconds 10 --engine lua,native
        (the issue's measurement: both servers up, runs alternated, median of the ratios)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import KAMAILIO_MPATH, kamailio_args, kamailio_available  # noqa: E402
from interleave import interleaved  # noqa: E402
from stepping import compare, sipp_step, step_up  # noqa: E402

from kemi_core.testing.process import free_port, kemi_executable  # noqa: E402
from kemi_core.testing.sipp import SippUas, sipp_available  # noqa: E402

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

PYTHON = """
import KSR as KSR


class Router:
    def child_init(self, rank):
        return 0

    def ksr_request_route(self, msg):
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.send_reply(483, "Too Many Hops")
            return 1
        KSR.pv.sets("$du", "sip:127.0.0.1:{uas_port}")
        if KSR.tm.t_relay() < 0:
            KSR.sl.send_reply(500, "Server error")
        return 1

    # Kamailio 5.6's app_python3 leaves an AttributeError set when the handler lacks one of
    # these methods, and a later KSR call fails: define them, doing nothing.
    def ksr_reply_route(self, msg):
        return 1

    def ksr_onsend_route(self, msg):
        return 1


def mod_init():
    return Router()
"""

JSDT = """
function ksr_request_route() {
    if (KSR.maxfwd.process_maxfwd(10) < 0) {
        KSR.sl.send_reply(483, "Too Many Hops");
        return;
    }
    KSR.pv.sets("$du", "sip:127.0.0.1:{uas_port}");
    if (KSR.tm.t_relay() < 0) {
        KSR.sl.send_reply(500, "Server error");
    }
}
"""

NATIVE = """
request_route {
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    $du = "sip:127.0.0.1:{uas_port}";
    if (!t_relay()) {
        sl_send_reply("500", "Server error");
    }
}
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
"""

#: engine -> (Kamailio module file it needs, script suffix, script text, cfg tail)
ENGINES: dict[str, tuple[str, str, str, str]] = {
    "lua": ("app_lua.so", ".lua", LUA,
            'loadmodule "app_lua.so"\nmodparam("app_lua", "load", "{script}")\ncfgengine "lua"\n'),
    "python": ("app_python3.so", ".py", PYTHON,
               'loadmodule "app_python3.so"\nmodparam("app_python3", "load", "{script}")\n'
               'cfgengine "python"\n'),
    "jsdt": ("app_jsdt.so", ".js", JSDT,
             'loadmodule "app_jsdt.so"\nmodparam("app_jsdt", "load", "{script}")\ncfgengine "jsdt"\n'),
    "native": ("tm.so", "", "", NATIVE),
}


def run_server(name: str, args: list[str], port: int, work: Path, rates: list[int],
               seconds: int, env: dict[str, str] | None = None) -> dict:
    def run_step(rate: int, pid: int) -> dict:
        return sipp_step(name, port, work, rate, seconds, pid, "uac",
                         ["-d", "0", "-l", str(max(rate * 4, 100))], "call")

    # 2 s between steps: the retransmission timers of a step drain first
    return step_up(name, args, port, work, rates, run_step, "call", pause=2, env=env)


def write_setup(engine: str, name: str, work: Path, uas_port: int | None = None,
                engines: dict[str, tuple[str, str, str, str]] | None = None,
                cfg_head: str = CFG) -> tuple[Path, int, int]:
    """The engine's kamailio.cfg and script under ``name`` in ``work``: (cfg, port, UAS port).
    ``engines`` and ``cfg_head``: another benchmark's table and cfg (bench/example_call.py)."""
    _, suffix, script_text, tail = (engines or ENGINES)[engine]
    uas_port, port = uas_port or free_port(), free_port()
    script = work / f"{name}{suffix}"
    if script_text:
        script.write_text(script_text.replace("{uas_port}", str(uas_port)))
    cfg = work / f"{name}.cfg"
    cfg.write_text(cfg_head.format(port=port, mpath=KAMAILIO_MPATH)
                   + tail.replace("{script}", str(script)).replace("{uas_port}", str(uas_port)))
    return cfg, port, uas_port


def run_engine(engine: str, work: Path, rates: list[int], seconds: int,
               kemi_only: bool = False) -> dict:
    """kemi, then Kamailio 5.6 when it has the engine's module, on the same config and script."""
    module = ENGINES[engine][0]
    servers: list[tuple[str, Callable[[Path], list[str]]]] = [
        ("kemi", lambda cfg: [*kemi_executable(), "run", "-f", str(cfg)])]
    if kemi_only:
        pass
    elif kamailio_available() and Path(KAMAILIO_MPATH, module).exists():
        servers.append(("kamailio", kamailio_args(work)))
    else:
        print(f"kamailio 5.6 with {module} not installed: measuring kemi alone ({engine})")
    results = []
    for server, make_args in servers:
        name = f"{server}_{engine}"
        cfg, port, uas_port = write_setup(engine, name, work)
        with SippUas(work, uas_port, name=f"uas_{name}", extra=["-aa"]):
            results.append(run_server(name, make_args(cfg), port, work, rates, seconds))
    section: dict = {"results": results}
    if len(results) == 2:
        ratios = compare(results[0], results[1], "call")
        section.update({f"{k}_kemi_over_kamailio" if k.endswith("ratio") else k: v
                        for k, v in ratios.items()})
    return section


def run_interleaved(engine: str, work: Path, rate: int, seconds: int, rounds: int,
                    setup: Callable[[str, str, Path], tuple[Path, int, int]] = write_setup,
                    tag: str = "il", scenario: str = "uac",
                    sipp_args: tuple[str, ...] = ("-d", "0"),
                    uas_scenario: str | Path = "uas") -> dict:
    """kemi and Kamailio 5.6 on the engine's cfg and script, ``rounds`` alternated runs at
    ``rate`` calls/s: CPU per call of each and the median ratio kemi / Kamailio. ``setup``,
    ``scenario``, ``uas_scenario``: another benchmark's (bench/example_call.py)."""
    servers = []
    for server, make_args in (("kemi", lambda cfg: [*kemi_executable(), "run", "-f", str(cfg)]),
                              ("kamailio", kamailio_args(work))):
        name = f"{server}_{engine}_{tag}"
        cfg, port, uas_port = setup(engine, name, work)
        servers.append((name, make_args, cfg, port, uas_port))
    return interleaved(servers, work, rate, seconds, rounds, scenario,
                       [*sipp_args, "-l", str(max(rate * 4, 100))], "call",
                       uas_scenario=uas_scenario)


def kemi_engines_compared(sections: dict[str, dict]) -> dict:
    """kemi's engines side by side: max rate, and CPU per call at the highest rate all held."""
    kemi = {e: next(r for r in sec["results"] if r["server"].startswith("kemi_"))
            for e, sec in sections.items()}
    out: dict = {"max_sustained_calls_per_s": {e: r["max_sustained_calls_per_s"]
                                               for e, r in kemi.items()}}
    held = [{s["rate"] for s in r["steps"] if s["sustained"]} for r in kemi.values()]
    common = set.intersection(*held) if held else set()
    if common:
        rate = max(common)
        cpu = {e: next(s["cpu_us_per_call"] for s in r["steps"] if s["rate"] == rate)
               for e, r in kemi.items()}
        out["cpu_compared_at_rate"] = rate
        out["cpu_us_per_call"] = cpu
        out["fastest"] = min(cpu, key=lambda e: (-out["max_sustained_calls_per_s"][e], cpu[e]))
    return out


def statistics_cost(engine: str, work: Path, rates: list[int], seconds: int,
                    rounds: int = 2) -> dict:
    """kemi alone with statistics on and off (KEMI_STATISTICS), alternated ``rounds`` times at
    each rate: CPU per call of each, and the difference (what statistics cost per call)."""
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    for i in range(rounds):
        for mode in ("on", "off"):
            name = f"kemi_{engine}_stats_{mode}_{i}"
            cfg, port, uas_port = write_setup(engine, name, work)
            env = dict(os.environ, KEMI_STATISTICS=mode)
            with SippUas(work, uas_port, name=f"uas_{name}", extra=["-aa"]):
                res = run_server(name, [*kemi_executable(), "run", "-f", str(cfg)], port, work,
                                 rates, seconds, env)
            cpu[mode] += [s["cpu_us_per_call"] for s in res["steps"]
                          if s["sustained"] and s["cpu_us_per_call"]]
    on, off = (min(cpu[m]) if cpu[m] else None for m in ("on", "off"))
    out: dict = {"rates": rates, "rounds": rounds, "cpu_us_per_call_on": cpu["on"],
                 "cpu_us_per_call_off": cpu["off"], "best_on": on, "best_off": off}
    if on and off:
        out["statistics_us_per_call"] = round(on - off, 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default="all",
                        help=f"all, or a comma-separated list of {', '.join(ENGINES)}")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--kemi-only", action="store_true",
                        help="skip Kamailio (e.g. to compare kemi's engines with each other)")
    parser.add_argument("--rates", default="500,1000,2000,3000,4000,5000,6000")
    parser.add_argument("--statistics-cost", action="store_true",
                        help="kemi alone, statistics on vs off (KEMI_STATISTICS), at --rates")
    parser.add_argument("--interleave", type=int, default=0, metavar="ROUNDS",
                        help="kemi and Kamailio alternated ROUNDS times at --rate (median ratio)")
    parser.add_argument("--rate", type=int, default=1500, help="calls/s of --interleave")
    opts = parser.parse_args()
    rates = [int(x) for x in opts.rates.split(",")]
    engines = list(ENGINES) if opts.engine == "all" else opts.engine.split(",")
    if set(engines) - set(ENGINES):
        parser.error(f"unknown engine in {opts.engine!r}: {', '.join(ENGINES)}")
    if not sipp_available():
        print(json.dumps({"error": "sipp not installed (apt-get install sip-tester)"}))
        return 1
    sections: dict[str, dict] = {}
    if opts.interleave:
        with tempfile.TemporaryDirectory(prefix="kemi-bench-") as tmp:
            for engine in engines:
                print(f"engine {engine}, interleaved at {opts.rate}/s:", flush=True)
                sections[engine] = run_interleaved(engine, Path(tmp), opts.rate, opts.seconds,
                                                   opts.interleave)
                print(f"  median CPU ratio kemi / Kamailio: {sections[engine]['median_ratio']}",
                      flush=True)
        print(json.dumps({"interleaved": sections}))
        return 0
    if opts.statistics_cost:
        with tempfile.TemporaryDirectory(prefix="kemi-bench-") as tmp:
            cost = {e: statistics_cost(e, Path(tmp), rates, opts.seconds) for e in engines}
        print(json.dumps({"seconds_per_step": opts.seconds, "statistics_cost": cost}))
        return 0
    with tempfile.TemporaryDirectory(prefix="kemi-bench-") as tmp:
        work = Path(tmp)
        for engine in engines:
            print(f"engine {engine}:", flush=True)
            sections[engine] = run_engine(engine, work, rates, opts.seconds, opts.kemi_only)
    figures: dict = {"seconds_per_step": opts.seconds, "engines": sections}
    if len(sections) > 1:
        figures["kemi_engines"] = kemi_engines_compared(sections)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
