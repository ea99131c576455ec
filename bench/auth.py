"""Digest authentication load: SIPp (-au/-ap) sends authenticated REGISTERs, then authenticated
calls, through the same kamailio.cfg and Lua script on kemi and on Kamailio 5.6.

The script is the official example's authentication path: auth_db.auth_check against the
subscriber table of one SQLite file (password column, calculate_ha1), auth_challenge when it
fails, consume_credentials; a REGISTER is then saved (registrar, usrloc in memory), an INVITE
record-routed and relayed statefully to a SIPp callee; in-dialog requests follow the Route.
Each server runs with one worker (children=1; ``--children N``: N), one after the other in this one run, at the
same fixed rate. Reported: unit of work per second and server CPU microseconds per unit
(user+system of its process tree, from /proc), and kemi / Kamailio. A unit is one
authenticated REGISTER (REGISTER, 401, REGISTER, 200) or one authenticated call (INVITE, 407,
ACK, INVITE, 100/180/200, ACK, BYE, 200). The last line printed is one JSON object. For kemi
with several workers, also the replies per unit a worker handed to the one holding their
transaction (``kemi:replies_handed_over``: those the kernel did not steer; with
``KEMI_REPLY_STEERING=off`` in the environment, every reply the hash gave another worker) and
those forwarded statelessly (``core:fwd_replies``: none expected).

    python bench/auth.py [--register-rate 400] [--call-rate 150] [--seconds 10] [--children 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    KAMAILIO_MPATH,
    Proc,
    kamailio_args,
    tree_cpu_seconds,
    wait_udp_answer,
)

from kemi_core.rpc.client import RpcError, call  # noqa: E402
from kemi_core.testing.kamailio import kamailio_available  # noqa: E402
from kemi_core.testing.process import free_port, kemi_executable  # noqa: E402
from kemi_core.testing.sipp import SippUas, run_sipp, sipp_available  # noqa: E402

HERE = Path(__file__).resolve().parent
USER, PASSWORD = "alice", "secret"

LUA = """
function ksr_request_route()
    if KSR.maxfwd.process_maxfwd(10) < 0 then
        KSR.sl.sl_send_reply(483, "Too Many Hops")
        return
    end
    if not KSR.pv.is_null("$tt") then
        -- in dialog: along the Record-Route; the ACK of our 407 has no Route and ends here
        if KSR.rr.loose_route() > 0 then
            KSR.tm.t_relay()
        end
        return
    end
    if KSR.is_ACK() then
        return
    end
    local realm = KSR.pv.get("$fd")
    if KSR.auth_db.auth_check(realm, "subscriber", 1) < 0 then
        KSR.auth.auth_challenge(realm, 0)
        return
    end
    KSR.auth.consume_credentials()
    if KSR.is_REGISTER() then
        if KSR.registrar.save("location", 0) < 0 then
            KSR.sl.sl_reply_error()
        end
        return
    end
    KSR.rr.record_route()
    KSR.pv.sets("$du", "sip:127.0.0.1:{uas_port}")
    if KSR.tm.t_relay() < 0 then
        KSR.sl.sl_reply_error()
    end
end
"""

CFG = """#!KAMAILIO
debug=0
log_stderror=yes
fork=yes
children={children}
auto_aliases=no
listen=udp:127.0.0.1:{port}
mpath="{mpath}"
loadmodule "db_sqlite.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
loadmodule "app_lua.so"
modparam("auth_db", "db_url", "sqlite://{db}")
modparam("auth_db", "calculate_ha1", yes)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "load_credentials", "")
modparam("auth_db", "use_domain", 0)
modparam("usrloc", "preload", "location")
modparam("registrar", "max_expires", 3600)
modparam("app_lua", "load", "{script}")
cfgengine "lua"
"""

UNITS = {"register": "auth_register_uac.xml", "call": "auth_invite_uac.xml"}


def make_db(path: Path) -> None:
    subprocess.run([*kemi_executable(), "db", "init", f"sqlite://{path}", "auth_db", "usrloc"],
                   check=True, capture_output=True)
    with sqlite3.connect(path) as con:
        con.execute("INSERT INTO subscriber (username, domain, password) VALUES (?, ?, ?)",
                    (USER, "127.0.0.1", PASSWORD))
        con.executemany("INSERT INTO subscriber (username, domain, password) VALUES (?, ?, ?)",
                        [(f"user{i}", "127.0.0.1", f"pw{i}") for i in range(1000)])


#: kemi's counters of replies that went another way than straight to their transaction
REPLY_COUNTERS = ("kemi:replies_handed_over", "core:fwd_replies")


def reply_counts(name: str, work: Path) -> dict[str, int]:
    """kemi's REPLY_COUNTERS now (none for Kamailio, or a kemi without them)."""
    if name != "kemi":
        return {}
    try:
        lines = call(f"unix:{work}/{name}_ctl", "stats.get_statistics", list(REPLY_COUNTERS))
    except (RpcError, OSError):
        return {}
    return {line.split(" = ")[0]: int(line.split(" = ")[1]) for line in lines}


def measure(name: str, unit: str, port: int, pid: int, work: Path, rate: int,
            seconds: int) -> dict:
    time.sleep(0.5)
    before = reply_counts(name, work)
    cpu0, t0 = tree_cpu_seconds(pid), time.monotonic()
    res = run_sipp(f"127.0.0.1:{port}", work, scenario=HERE / "scenarios" / UNITS[unit],
                   calls=rate * seconds, rate=rate, timeout=seconds * 4 + 30,
                   name=f"{name}-{unit}",
                   extra=["-l", str(rate * 4), "-au", USER, "-ap", PASSWORD, "-s", USER])
    cpu1, t1 = tree_cpu_seconds(pid), time.monotonic()
    ok = res.successful
    time.sleep(0.5)  # (the last BYE's 200)
    after = reply_counts(name, work)
    out = {"server": name, "unit": unit, "ok": ok, "failed": res.failed,
           "per_s": round(ok / (t1 - t0), 1),
           "cpu_us_per_unit": round((cpu1 - cpu0) / ok * 1e6, 1) if ok else None}
    for key in after:
        out[key.split(":")[1] + "_per_unit"] = round((after[key] - before.get(key, 0))
                                                     / max(ok, 1), 3)
    return out


def run_server(name: str, args: list[str], port: int, uas_port: int, work: Path,
               rates: dict[str, int], seconds: int) -> list[dict]:
    out = []
    with SippUas(work, uas_port, HERE / "scenarios" / "rr_uas.xml", name=f"{name}-uas"):
        # a private control socket: another kemi on this machine may hold the default one
        env = dict(os.environ, KEMI_CTL=f"unix:{work}/{name}_ctl")
        proc = Proc(args, work / f"{name}.log", cwd=work, env=env)
        try:
            if not wait_udp_answer(port, timeout=60.0):
                raise RuntimeError(f"{name} did not answer; see {work / (name + '.log')}")
            for unit in ("register", "call"):
                out.append(measure(name, unit, port, proc.pid, work, rates[unit], seconds))
        finally:
            proc.stop()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--register-rate", type=int, default=400)
    parser.add_argument("--call-rate", type=int, default=150)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--children", type=int, default=1, help="workers of both servers")
    parser.add_argument("--servers", default="kemi,kamailio", help="which, in this order")
    opts = parser.parse_args()
    if not sipp_available():
        print(json.dumps({"error": "sipp not installed (apt-get install sip-tester)"}))
        return 1
    rates = {"register": opts.register_rate, "call": opts.call_rate}
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="kemi-bench-auth-") as tmp:
        work = Path(tmp)
        db = work / "auth.db"
        make_db(db)
        servers = [("kemi", lambda cfg: [*kemi_executable(), "run", "-f", str(cfg)])]
        if kamailio_available("app_lua.so", "auth_db.so", "db_sqlite.so"):
            servers.append(("kamailio", kamailio_args(work)))
        else:
            print("kamailio 5.6 with app_lua, auth_db and db_sqlite not installed: kemi alone")
        wanted = opts.servers.split(",")
        servers = sorted((s for s in servers if s[0] in wanted), key=lambda s: wanted.index(s[0]))
        for name, make_args in servers:
            port, uas_port = free_port(), free_port()
            script = work / f"{name}.lua"
            script.write_text(LUA.replace("{uas_port}", str(uas_port)))
            cfg = work / f"{name}.cfg"
            # four slashes: Kamailio reads sqlite:///x relative to its working directory
            cfg.write_text(CFG.format(port=port, mpath=KAMAILIO_MPATH, db=f"/{db}",
                                      script=script, children=opts.children))
            for r in run_server(name, make_args(cfg), port, uas_port, work, rates, opts.seconds):
                results.append(r)
                counts = "".join(f"  {k} {v}" for k, v in r.items() if k.endswith("_per_unit")
                                 and k != "cpu_us_per_unit")
                print(f"{name:9} {r['unit']:9} {r['ok']:6} ok {r['failed']:5} failed "
                      f"{r['per_s']:8}/s  {r['cpu_us_per_unit']} us CPU/unit{counts}")
    figures: dict = {"rates": rates, "seconds": opts.seconds, "children": opts.children,
                     "results": results}
    by = {(r["server"], r["unit"]): r for r in results}
    for unit in UNITS:
        kemi, kam = by.get(("kemi", unit)), by.get(("kamailio", unit))
        if kemi and kam and kemi["cpu_us_per_unit"] and kam["cpu_us_per_unit"]:
            figures[f"cpu_ratio_{unit}_kemi_over_kamailio"] = round(
                kemi["cpu_us_per_unit"] / kam["cpu_us_per_unit"], 2)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
