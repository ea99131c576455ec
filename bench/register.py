"""REGISTER load: SIPp UAC -> registrar save() -> 200, kemi beside Kamailio 5.6, same config.

Two usrloc set-ups (and a floor: the same config answering a bare 200), each run on kemi then on Kamailio with the SAME kamailio.cfg (native
routes, one worker): ``memory`` (db_mode 0) and ``sqlite`` (db_mode 1, write-through to one
SQLite file made by ``kemi db init``, which Kamailio's db_sqlite reads as well). SIPp registers
``--users`` users in turn (the first pass inserts bindings, later ones refresh them). For each,
the REGISTER rate steps up until a step fails (< 99.5% answered 200 or < 95% of the asked
rate); server CPU per REGISTER (user+system of its process tree) is compared at the highest
rate both sustained. The last line printed is one JSON object with the figures.

    python bench/register.py [--mode memory|sqlite|all] [--seconds 10] [--rates 500,1000,2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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

from kemi_core.testing.process import free_port, kemi_executable  # noqa: E402
from kemi_core.testing.sipp import run_sipp, sipp_available  # noqa: E402

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "register_uac.xml"

CFG = """#!KAMAILIO
debug=0
log_stderror=yes
fork=yes
children=1
auto_aliases=no
listen=udp:127.0.0.1:{port}
mpath="{mpath}"
{db_module}loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "db_mode", {db_mode})
{db_url}modparam("usrloc", "preload", "location")
request_route {{
    if (is_method("REGISTER")) {{
        if (!save("location")) {{
            sl_reply_error();
        }}
        exit;
    }}
    sl_send_reply("404", "Not here");
}}
"""

MODES = {"memory": 0, "sqlite": 1}
#: the same config answering REGISTER with a bare 200 (no save): the floor both servers pay
#: per request, to tell registrar's own cost from the rest
FLOOR = "floor"


def write_cfg(mode: str, name: str, work: Path) -> tuple[Path, int]:
    port = free_port()
    db_module = db_url = ""
    if mode == "sqlite":
        db = work / f"{name}.db"
        out = subprocess.run([*kemi_executable(), "db", "init", f"sqlite:///{db}", "usrloc"],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(out.stdout + out.stderr)
        db_module = 'loadmodule "db_sqlite.so"\n'
        # four slashes: an absolute path for Kamailio's db_sqlite too (kemi reads both)
        db_url = f'modparam("usrloc", "db_url", "sqlite:///{db}")\n'
    text = CFG.format(port=port, mpath=KAMAILIO_MPATH, db_module=db_module, db_url=db_url,
                      db_mode=MODES.get(mode, 0))
    if mode == FLOOR:
        text = text.replace('if (!save("location")) {', 'if (!sl_send_reply("200", "OK")) {')
    cfg = work / f"{name}.cfg"
    cfg.write_text(text)
    return cfg, port


def users_file(work: Path, n: int) -> Path:
    path = work / "users.csv"
    path.write_text("SEQUENTIAL\n" + "".join(f"user{i:06d};\n" for i in range(n)))
    return path


def step(name: str, port: int, work: Path, rate: int, seconds: int, pid: int,
         users: Path) -> dict:
    cpu0, t0 = tree_cpu_seconds(pid), time.monotonic()
    res = run_sipp(f"127.0.0.1:{port}", work, scenario=SCENARIO, calls=rate * seconds,
                   rate=rate, timeout=seconds * 3 + 30, name=f"{name}_{rate}",
                   extra=["-inf", str(users), "-l", str(max(rate * 4, 100))])
    cpu1, t1 = tree_cpu_seconds(pid), time.monotonic()
    ok, failed = res.successful, res.failed
    total = ok + failed
    achieved = ok / (t1 - t0)
    good = total > 0 and ok / max(total, rate * seconds) >= 0.995 and achieved >= 0.95 * rate
    return {"rate": rate, "ok": ok, "failed": failed, "registers_per_s": round(achieved, 1),
            "cpu_us_per_register": round((cpu1 - cpu0) / ok * 1e6, 1) if ok else None,
            "sustained": good}


def run_server(name: str, args: list[str], port: int, work: Path, rates: list[int],
               seconds: int, users: Path) -> dict:
    proc = Proc(args, work / f"{name}.log", cwd=work)
    steps = []
    try:
        if not wait_udp_answer(port):
            raise RuntimeError(f"{name} did not answer; see {work / (name + '.log')}")
        for rate in rates:
            r = step(name, port, work, rate, seconds, proc.pid, users)
            steps.append(r)
            print(f"  {name:16} {rate:6}/s asked: {r['ok']:7} ok {r['failed']:6} failed "
                  f"{r['registers_per_s']:8}/s  {r['cpu_us_per_register']} us CPU/REGISTER  "
                  f"{'ok' if r['sustained'] else 'NOT sustained'}", flush=True)
            if not r["sustained"] or not proc.alive():
                break
    finally:
        proc.stop()
    held = [s["rate"] for s in steps if s["sustained"]]
    return {"server": name, "steps": steps, "max_sustained_registers_per_s": max(held, default=0)}


def compare(kemi: dict, other: dict) -> dict:
    out: dict = {}
    both = {s["rate"] for s in kemi["steps"] if s["sustained"]} & {
        s["rate"] for s in other["steps"] if s["sustained"]}
    if both:
        rate = max(both)
        kc = next(s["cpu_us_per_register"] for s in kemi["steps"] if s["rate"] == rate)
        oc = next(s["cpu_us_per_register"] for s in other["steps"] if s["rate"] == rate)
        out["cpu_compared_at_rate"] = rate
        out["cpu_ratio_kemi_over_kamailio"] = round(kc / oc, 2) if kc and oc else None
    return out


def run_mode(mode: str, work: Path, rates: list[int], seconds: int, users: Path) -> dict:
    servers: list[tuple[str, Callable[[Path], list[str]]]] = [
        ("kemi", lambda cfg: [*kemi_executable(), "run", "-f", str(cfg)])]
    if kamailio_available():
        servers.append(("kamailio", kamailio_args(work)))
    else:
        print("kamailio 5.6 not installed: measuring kemi alone")
    results = []
    for server, make_args in servers:
        name = f"{server}_{mode}"
        cfg, port = write_cfg(mode, name, work)
        results.append(run_server(name, make_args(cfg), port, work, rates, seconds, users))
    section: dict = {"results": results}
    if len(results) == 2:
        section.update(compare(results[0], results[1]))
    return section


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=[*MODES, FLOOR, "all"], default="all")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rates", default="500,1000,2000,3000")
    parser.add_argument("--users", type=int, default=2000)
    opts = parser.parse_args()
    if not sipp_available():
        print(json.dumps({"error": "sipp not installed (apt-get install sip-tester)"}))
        return 1
    rates = [int(x) for x in opts.rates.split(",")]
    modes = [*MODES, FLOOR] if opts.mode == "all" else [opts.mode]
    sections = {}
    with tempfile.TemporaryDirectory(prefix="kemi-bench-register-") as tmp:
        work = Path(tmp)
        users = users_file(work, opts.users)
        for mode in modes:
            print(f"usrloc {mode}:", flush=True)
            sections[mode] = run_mode(mode, work, rates, opts.seconds, users)
    print(json.dumps({"seconds_per_step": opts.seconds, "users": opts.users, "modes": sections}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
