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
                             [--children 1] [--db-mode 1,2] [--db-dir /dev/shm]
                             [--journal wal|delete] [--rounds 3] [--warm] [--strace]
                             [--split]

``--children N`` runs both servers with N workers (the cfg's ``children``; SIPp's one socket
lands on one of them, SO_REUSEPORT hashing its flow).

SQLite options: ``--db-mode`` the usrloc db_mode(s) of the sqlite mode (1 write-through, 2
write-back: memory plus a timer flush every ``--timer-interval`` seconds, as both example configs
run it with WITH_USRLOCDB); ``--db-dir`` where the database files go (``/dev/shm``: tmpfs, a
sync costs nothing there, so what is left is CPU); ``--journal wal`` (the default) runs both
servers on a WAL file, ``--journal delete`` on a rollback journal (SQLite's default, what a file
made by Kamailio's kamdbctl has); both with synchronous FULL, so both make every commit durable
with the same syncs (WAL: one fdatasync per commit; DELETE: journal and database synced).

``--rounds N`` runs the servers N times, alternated (kemi, Kamailio, Kamailio, kemi, ...), each
with a fresh database; ``--warm`` first registers every user once (not measured), so that every
measured REGISTER refreshes a binding (an UPDATE), as in a steady state. ``--strace`` counts the
tree's system calls (strace -c -f, attached for one measured step; slows the server, so its CPU
figures are not comparable) and prints the sync and write calls per REGISTER. ``--split``
prints where each step's CPU went: user and system microseconds per REGISTER of every thread
of the tree (the main process, each child process, each thread by name).

The steps start low because with a sync at every commit (WAL or rollback journal) neither server
keeps up with more than a few hundred write-through REGISTERs per second on this machine's disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    KAMAILIO_MPATH,
    kamailio_args,
    kamailio_available,
    split_us,
    task_ticks,
    tree_pids,
)
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
modparam("usrloc", "timer_interval", {timer_interval})
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
#: the system calls --strace reports per REGISTER
STRACED = ("fsync", "fdatasync", "pwrite64", "write", "pread64", "openat", "unlink", "fcntl")
#: the same config answering REGISTER with a bare 200 (no save): the floor both servers pay
#: per request, to tell registrar's own cost from the rest
FLOOR = "floor"


@dataclass
class DbOptions:
    """How the sqlite mode runs (see the module's doc)."""

    db_mode: int = 1
    db_dir: Path | None = None
    journal: str = "wal"
    timer_interval: int = 60


def write_cfg(mode: str, name: str, work: Path, children: int = 1,
              dbo: DbOptions | None = None) -> tuple[Path, int]:
    port = free_port()
    dbo = dbo or DbOptions()
    db_module = db_url = ""
    if mode == "sqlite":
        db = (dbo.db_dir or work) / f"{name}.db"
        for old in db.parent.glob(db.name + "*"):  # a fresh file for every run
            old.unlink()
        out = subprocess.run([*kemi_executable(), "db", "init", f"sqlite:///{db}", "usrloc"],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(out.stdout + out.stderr)
        db_module = 'loadmodule "db_sqlite.so"\n'
        # four slashes: an absolute path for Kamailio's db_sqlite too (kemi reads both)
        db_url = f'modparam("usrloc", "db_url", "sqlite:///{db}")\n'
        # The same durable work on both: Kamailio's db_sqlite sets no journal mode (the
        # file's own: WAL is kept in the file, what `kemi db init` leaves, DELETE otherwise)
        # and leaves SQLite's synchronous FULL (a sync at every commit); kemi's db_sqlite
        # defaults to WAL, synchronous NORMAL (synced at checkpoints only).
        if dbo.journal == "delete":
            with sqlite3.connect(db) as con:
                con.execute("PRAGMA journal_mode = DELETE").fetchall()
        if not name.startswith("kamailio"):
            db_url += 'modparam("db_sqlite", "synchronous", "FULL")\n'
            db_url += f'modparam("db_sqlite", "journal_mode", "{dbo.journal.upper()}")\n'
    text = CFG.format(port=port, mpath=KAMAILIO_MPATH, db_module=db_module, db_url=db_url,
                      db_mode=dbo.db_mode if mode == "sqlite" else MODES.get(mode, 0),
                      children=children, timer_interval=dbo.timer_interval)
    if mode == FLOOR:
        text = text.replace('if (!save("location")) {', 'if (!sl_send_reply("200", "OK")) {')
    cfg = work / f"{name}.cfg"
    cfg.write_text(text)
    return cfg, port


def users_file(work: Path, n: int) -> Path:
    path = work / "users.csv"
    path.write_text("SEQUENTIAL\n" + "".join(f"user{i:06d};\n" for i in range(n)))
    return path


@dataclass
class RunOptions:
    rates: list[int]
    seconds: int
    users: Path
    n_users: int
    children: int = 1
    db: DbOptions = field(default_factory=DbOptions)
    warm: bool = False
    strace: bool = False
    split: bool = False
    #: PYTHONPATH of a second kemi tree run beside the first (``--kemi-b``)
    kemi_b: str = ""


def strace_counts(out: Path) -> dict[str, int]:
    """calls per system call from ``strace -c`` output."""
    counts: dict[str, int] = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and not line.lstrip().startswith("100"):
            try:
                counts[parts[-1]] = int(parts[3])
            except ValueError:
                continue
    return counts


def traced_step(step: Callable[[], dict], pid: int, out: Path) -> dict:
    """``step()`` with ``strace -c -f`` attached to the server's tree; the calls per REGISTER."""
    args = ["strace", "-c", "-f", "-o", str(out)]
    for p in tree_pids(pid):
        args += ["-p", str(p)]
    tracer = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # strace attaches to every thread before the step starts
    try:
        r = step()
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=30)
    counts = strace_counts(out)
    ok = max(r["ok"], 1)
    per = {k: round(n / ok, 2) for k, n in sorted(counts.items(), key=lambda kv: -kv[1])}
    r["syscalls_per_register"] = {k: per.get(k, 0.0) for k in STRACED}
    r["syscalls_per_register"]["all"] = round(sum(counts.values()) / ok, 2)
    r["syscalls_per_register"]["others"] = {k: v for k, v in per.items()
                                            if k not in STRACED and v >= 0.05}
    return r


def run_mode(mode: str, work: Path, opts: RunOptions, rounds: int = 1) -> dict:
    kemi = lambda cfg: [*kemi_executable(), "run", "-f", str(cfg)]  # noqa: E731
    servers: list[tuple[str, Callable[[Path], list[str]]]] = [("kemi", kemi)]
    if kamailio_available():
        servers.append(("kamailio", kamailio_args(work)))
    else:
        print("kamailio 5.6 not installed: measuring kemi alone")
    if opts.kemi_b:  # another kemi tree, for an A/B of a change (alternated as the others)
        servers.append(("kemi_b", kemi))
    envs = {"kemi_b": {**os.environ, "PYTHONPATH": opts.kemi_b}} if opts.kemi_b else {}
    runs: dict[str, list[dict]] = {server: [] for server, _ in servers}
    for rnd in range(rounds):
        # alternated: kemi first in even rounds, Kamailio (or kemi_b) first in odd ones
        for server, make_args in (servers if rnd % 2 == 0 else servers[::-1]):
            name = f"{server}_{mode}"
            cfg, port = write_cfg(mode, name, work, opts.children, opts.db)
            warmed: set[int] = set()

            def run_step(rate: int, pid: int, name: str = name, port: int = port,
                         warmed: set[int] = warmed) -> dict:
                extra = ["-inf", str(opts.users), "-l", str(max(rate * 4, 100))]
                if opts.warm and not warmed:  # every user once: later REGISTERs refresh
                    warmed.add(rate)
                    sipp_step(name + "_warm", port, work, rate,
                              max(1, -(-opts.n_users // rate)), pid, SCENARIO, extra, "register")
                def step() -> dict:
                    return sipp_step(name, port, work, rate, opts.seconds, pid, SCENARIO, extra,
                                     "register")
                if opts.strace:
                    return traced_step(step, pid, work / f"{name}_{rate}.strace")
                if opts.split:
                    before = task_ticks(pid)
                    r = step()
                    r["split_us_user_system"] = split_us(pid, before, task_ticks(pid),
                                                         max(r["ok"], 1))
                    print(f"    {name} split (us per REGISTER, user/system): "
                          f"{r['split_us_user_system']}", flush=True)
                    return r
                return step()

            res = step_up(name, make_args(cfg), port, work, opts.rates, run_step, "register",
                          env=envs.get(server))
            res["round"] = rnd
            if any(s["failed"] for s in res["steps"]):  # what the server said about it
                lines = (work / f"{name}.log").read_text(errors="replace").splitlines()
                print("\n".join(f"    | {line}" for line in lines[-12:]), flush=True)
            runs[server].append(res)
    section: dict = {"results": [r for rs in runs.values() for r in rs]}
    if "kamailio" in runs:
        per_round = [compare(k, m, "register") for k, m in zip(runs["kemi"], runs["kamailio"],
                                                                strict=True)]
        section.update({f"{k}_kemi_over_kamailio" if k.endswith("ratio") else k: v
                        for k, v in per_round[0].items()})
        if rounds > 1:
            section["cpu_ratio_by_round"] = [r.get("cpu_ratio") for r in per_round]
            for server, rs in runs.items():
                section[f"{server}_cpu_us_by_round"] = [
                    {s["rate"]: s["cpu_us_per_register"] for s in r["steps"]} for r in rs]
    return section


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=[*MODES, FLOOR, "all"], default="all")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rates", default="250,500,1000,2000,3000")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--children", type=int, default=1, help="workers of both servers")
    parser.add_argument("--db-mode", default="1",
                        help="usrloc db_mode(s) of the sqlite mode, e.g. 1,2")
    parser.add_argument("--db-dir", type=Path, default=None,
                        help="where the SQLite files go (default: the run's temporary directory)")
    parser.add_argument("--journal", choices=["wal", "delete"], default="wal",
                        help="both servers' SQLite journal mode (both synchronous FULL)")
    parser.add_argument("--timer-interval", type=int, default=10,
                        help="usrloc timer_interval (db_mode 2's flush), seconds")
    parser.add_argument("--rounds", type=int, default=1, help="alternated runs of both servers")
    parser.add_argument("--warm", action="store_true",
                        help="register every user once before measuring (refreshes only)")
    parser.add_argument("--strace", action="store_true",
                        help="count the system calls per REGISTER (strace -c -f)")
    parser.add_argument("--kemi-b", default="",
                        help="PYTHONPATH of a second kemi tree, run alternated as kemi_b")
    parser.add_argument("--split", action="store_true",
                        help="CPU per REGISTER by process, thread and user/system time")
    opts = parser.parse_args()
    if not sipp_available():
        print(json.dumps({"error": "sipp not installed (apt-get install sip-tester)"}))
        return 1
    rates = [int(x) for x in opts.rates.split(",")]
    modes = [*MODES, FLOOR] if opts.mode == "all" else [opts.mode]
    sections = {}
    with tempfile.TemporaryDirectory(prefix="kemi-bench-register-") as tmp:
        work = Path(tmp)
        db_dir = None
        if opts.db_dir is not None:
            db_dir = Path(tempfile.mkdtemp(prefix="kemi-bench-register-db-", dir=opts.db_dir))
        try:
            run = RunOptions(rates, opts.seconds, users_file(work, opts.users), opts.users,
                             opts.children, warm=opts.warm, strace=opts.strace,
                             split=opts.split, kemi_b=opts.kemi_b)
            for mode in modes:
                for db_mode in ([int(x) for x in opts.db_mode.split(",")]
                                if mode == "sqlite" else [MODES.get(mode, 0)]):
                    key = mode if mode != "sqlite" or db_mode == 1 else f"{mode}_db_mode{db_mode}"
                    print(f"usrloc {key}:", flush=True)
                    run.db = DbOptions(db_mode, db_dir, opts.journal, opts.timer_interval)
                    sections[key] = run_mode(mode, work, run, opts.rounds)
        finally:
            if db_dir is not None:
                shutil.rmtree(db_dir, ignore_errors=True)
    print(json.dumps({"seconds_per_step": opts.seconds, "users": opts.users,
                      "children": opts.children, "journal": opts.journal,
                      "db_dir": str(opts.db_dir or "tmp"), "modes": sections}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
