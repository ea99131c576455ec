"""REGISTER load: SIPp UAC -> registrar save() -> 200, kemi beside Kamailio 5.6, same config.

Two usrloc set-ups (and a floor: the same config answering a bare 200), each run on kemi then on Kamailio with the SAME kamailio.cfg (native
routes, one worker): ``memory`` (db_mode 0) and ``sqlite`` (db_mode 1, write-through to one
SQLite file made by ``kemi db init``, which Kamailio's db_sqlite reads as well; kemi's
db_sqlite gets ``synchronous`` FULL, what Kamailio's uses, so both sync every commit). SIPp registers
``--users`` users in turn (the first pass inserts bindings, later ones refresh them). For each,
the REGISTER rate steps up until a step fails (< 99.5% answered 200 or < 95% of the asked
rate); server CPU per REGISTER (user+system of its process tree) is compared at the highest
rate both sustained. The last line printed is one JSON object with the figures.

    python bench/register.py [--mode memory|sqlite|all] [--seconds 10] [--rates 250,500,1000]
                             [--children 1]

``--children N`` runs both servers with N workers (the cfg's ``children``; SIPp's one socket
lands on one of them, SO_REUSEPORT hashing its flow).

The steps start low because Kamailio's db_sqlite (a synced rollback journal) keeps up with only a
few hundred write-through REGISTERs per second on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import KAMAILIO_MPATH, kamailio_args, kamailio_available  # noqa: E402
from stepping import compare, sipp_step, step_up  # noqa: E402

from kemi_core.testing.process import free_port, kemi_executable  # noqa: E402
from kemi_core.testing.sipp import sipp_available  # noqa: E402

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "register_uac.xml"

CFG = """#!KAMAILIO
debug=0
log_stderror=yes
fork=yes
children={children}
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


def write_cfg(mode: str, name: str, work: Path, children: int = 1) -> tuple[Path, int]:
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
        if not name.startswith("kamailio"):
            # The same durability: Kamailio's db_sqlite leaves SQLite's default synchronous
            # (FULL: the WAL is synced at every commit, one fdatasync per write-through
            # REGISTER), kemi's default is NORMAL (synced at checkpoints only).
            db_url += 'modparam("db_sqlite", "synchronous", "FULL")\n'
    text = CFG.format(port=port, mpath=KAMAILIO_MPATH, db_module=db_module, db_url=db_url,
                      db_mode=MODES.get(mode, 0), children=children)
    if mode == FLOOR:
        text = text.replace('if (!save("location")) {', 'if (!sl_send_reply("200", "OK")) {')
    cfg = work / f"{name}.cfg"
    cfg.write_text(text)
    return cfg, port


def users_file(work: Path, n: int) -> Path:
    path = work / "users.csv"
    path.write_text("SEQUENTIAL\n" + "".join(f"user{i:06d};\n" for i in range(n)))
    return path


def run_mode(mode: str, work: Path, rates: list[int], seconds: int, users: Path,
             children: int = 1) -> dict:
    servers: list[tuple[str, Callable[[Path], list[str]]]] = [
        ("kemi", lambda cfg: [*kemi_executable(), "run", "-f", str(cfg)])]
    if kamailio_available():
        servers.append(("kamailio", kamailio_args(work)))
    else:
        print("kamailio 5.6 not installed: measuring kemi alone")
    results = []
    for server, make_args in servers:
        name = f"{server}_{mode}"
        cfg, port = write_cfg(mode, name, work, children)

        def run_step(rate: int, pid: int, name: str = name, port: int = port) -> dict:
            return sipp_step(name, port, work, rate, seconds, pid, SCENARIO,
                             ["-inf", str(users), "-l", str(max(rate * 4, 100))], "register")

        results.append(step_up(name, make_args(cfg), port, work, rates, run_step, "register"))
    section: dict = {"results": results}
    if len(results) == 2:
        section.update({f"{k}_kemi_over_kamailio" if k.endswith("ratio") else k: v
                        for k, v in compare(results[0], results[1], "register").items()})
    return section


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=[*MODES, FLOOR, "all"], default="all")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rates", default="250,500,1000,2000,3000")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--children", type=int, default=1, help="workers of both servers")
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
            sections[mode] = run_mode(mode, work, rates, opts.seconds, users, opts.children)
    print(json.dumps({"seconds_per_step": opts.seconds, "users": opts.users,
                      "children": opts.children, "modes": sections}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
