"""In-process engine benchmark: the same routing logic in kemi's four config engines.

The end-to-end benchmarks cannot tell the engines apart (the script is a few percent of a
stateful call), so this one drives the real Dispatcher in-process with a null transport and
stateless replies, and measures CPU (time.process_time) per message for each engine:

- ``trivial``: OPTIONS gets a 200, anything else a 404;
- ``realistic``: Max-Forwards check, header tests, $var assignments, $du, a sub-route with an
  if/else chain on the method, xdbg at a disabled level, a 200 reply.

Each figure is the best of several rounds over a fixed number of messages. ``empty`` runs the
same messages through an empty route; ``script`` = total - empty is what the routing logic
costs in that engine. ``run`` times ``engine.run`` alone (fresh, parsed, header-checked
contexts; no dispatcher, no parsing in the timed loop). Each (engine, route) runs in its own process so nothing leaks between
them. The last line printed is one JSON object with every figure.

    python bench/engines.py [--messages 20000] [--rounds 5] [--engine native,lua,python]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROUTES = ("empty", "trivial", "realistic")
ENGINES = ("native", "lua", "python", "jsdt")

NATIVE = {
    "empty": "request_route {\n}\n",
    "trivial": """
request_route {
    if (is_method("OPTIONS")) {
        sl_send_reply("200", "OK");
        exit;
    }
    sl_send_reply("404", "Not here");
}
""",
    "realistic": """
request_route {
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if (is_present_hf("User-Agent")) {
        $var(ua) = 1;
    } else {
        $var(ua) = 0;
    }
    if (is_present_hf("Contact")) {
        $var(contact) = 1;
    }
    $var(caller) = $fU;
    $var(callee) = $rU;
    $du = "sip:127.0.0.1:5090";
    route(CLASSIFY);
    xdbg("routing $rm from $fU to $rU\\n");
    sl_send_reply("200", "OK");
}

route[CLASSIFY] {
    if ($rm == "INVITE") {
        $var(kind) = "call";
    } else if ($rm == "REGISTER") {
        $var(kind) = "registration";
    } else if ($rm == "MESSAGE") {
        $var(kind) = "im";
    } else {
        $var(kind) = "other";
    }
}
""",
}

LUA = {
    "empty": "function ksr_request_route()\nend\n",
    "trivial": """
function ksr_request_route()
    if KSR.is_method("OPTIONS") then
        KSR.sl.send_reply(200, "OK")
        return
    end
    KSR.sl.send_reply(404, "Not here")
end
""",
    "realistic": """
function classify()
    local m = KSR.pv.get("$rm")
    if m == "INVITE" then
        KSR.pv.sets("$var(kind)", "call")
    elseif m == "REGISTER" then
        KSR.pv.sets("$var(kind)", "registration")
    elseif m == "MESSAGE" then
        KSR.pv.sets("$var(kind)", "im")
    else
        KSR.pv.sets("$var(kind)", "other")
    end
end

function ksr_request_route()
    if KSR.maxfwd.process_maxfwd(10) < 0 then
        KSR.sl.send_reply(483, "Too Many Hops")
        return
    end
    if KSR.textops.is_present_hf("User-Agent") > 0 then
        KSR.pv.seti("$var(ua)", 1)
    else
        KSR.pv.seti("$var(ua)", 0)
    end
    if KSR.textops.is_present_hf("Contact") > 0 then
        KSR.pv.seti("$var(contact)", 1)
    end
    KSR.pv.sets("$var(caller)", KSR.pv.get("$fU"))
    KSR.pv.sets("$var(callee)", KSR.pv.get("$rU"))
    KSR.pv.sets("$du", "sip:127.0.0.1:5090")
    classify()
    KSR.xlog.xdbg("routing $rm from $fU to $rU\\n")
    KSR.sl.send_reply(200, "OK")
end
""",
}

JSDT = {
    "empty": "function ksr_request_route() {\n}\n",
    "trivial": """
function ksr_request_route() {
    if (KSR.is_method("OPTIONS")) {
        KSR.sl.send_reply(200, "OK");
        return;
    }
    KSR.sl.send_reply(404, "Not here");
}
""",
    "realistic": """
function classify() {
    var m = KSR.pv.get("$rm");
    if (m == "INVITE") {
        KSR.pv.sets("$var(kind)", "call");
    } else if (m == "REGISTER") {
        KSR.pv.sets("$var(kind)", "registration");
    } else if (m == "MESSAGE") {
        KSR.pv.sets("$var(kind)", "im");
    } else {
        KSR.pv.sets("$var(kind)", "other");
    }
}

function ksr_request_route() {
    if (KSR.maxfwd.process_maxfwd(10) < 0) {
        KSR.sl.send_reply(483, "Too Many Hops");
        return;
    }
    if (KSR.textops.is_present_hf("User-Agent") > 0) {
        KSR.pv.seti("$var(ua)", 1);
    } else {
        KSR.pv.seti("$var(ua)", 0);
    }
    if (KSR.textops.is_present_hf("Contact") > 0) {
        KSR.pv.seti("$var(contact)", 1);
    }
    KSR.pv.sets("$var(caller)", KSR.pv.get("$fU"));
    KSR.pv.sets("$var(callee)", KSR.pv.get("$rU"));
    KSR.pv.sets("$du", "sip:127.0.0.1:5090");
    classify();
    KSR.xlog.xdbg("routing $rm from $fU to $rU\\n");
    KSR.sl.send_reply(200, "OK");
}
""",
}

_PY_HEAD = "import KSR as KSR\n\n\nclass Router:\n    def child_init(self, rank):\n        return 0\n\n"
_PY_TAIL = "\n\ndef mod_init():\n    return Router()\n"
PYTHON = {
    "empty": _PY_HEAD + "    def ksr_request_route(self, msg):\n        return 1\n" + _PY_TAIL,
    "trivial": _PY_HEAD + """
    def ksr_request_route(self, msg):
        if KSR.is_method("OPTIONS"):
            KSR.sl.send_reply(200, "OK")
            return 1
        KSR.sl.send_reply(404, "Not here")
        return 1
""" + _PY_TAIL,
    "realistic": _PY_HEAD + """
    def classify(self):
        m = KSR.pv.get("$rm")
        if m == "INVITE":
            KSR.pv.sets("$var(kind)", "call")
        elif m == "REGISTER":
            KSR.pv.sets("$var(kind)", "registration")
        elif m == "MESSAGE":
            KSR.pv.sets("$var(kind)", "im")
        else:
            KSR.pv.sets("$var(kind)", "other")

    def ksr_request_route(self, msg):
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.send_reply(483, "Too Many Hops")
            return 1
        if KSR.textops.is_present_hf("User-Agent") > 0:
            KSR.pv.seti("$var(ua)", 1)
        else:
            KSR.pv.seti("$var(ua)", 0)
        if KSR.textops.is_present_hf("Contact") > 0:
            KSR.pv.seti("$var(contact)", 1)
        KSR.pv.sets("$var(caller)", KSR.pv.get("$fU"))
        KSR.pv.sets("$var(callee)", KSR.pv.get("$rU"))
        KSR.pv.sets("$du", "sip:127.0.0.1:5090")
        self.classify()
        KSR.xlog.xdbg("routing $rm from $fU to $rU\\n")
        KSR.sl.send_reply(200, "OK")
        return 1
""" + _PY_TAIL,
}

#: Methods the messages cycle through (every arm of the if/else chain is taken).
METHODS = ("INVITE", "OPTIONS", "REGISTER", "MESSAGE", "OPTIONS", "INFO")


class NullTransport:
    """Accepts every send and keeps nothing: the benchmark measures the server side only."""

    def __init__(self) -> None:
        self.count = 0

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool:
        self.count += 1
        return True

    def local_address(self, proto: str) -> tuple[str, int]:
        return ("127.0.0.1", 5060)


def build(engine: str, route: str, work: Path) -> tuple[Any, NullTransport]:
    """A Dispatcher whose core runs ``route`` in ``engine`` (the real engine classes)."""
    import kemi_maxfwd
    import kemi_pv
    import kemi_sl
    import kemi_textops
    import kemi_xlog
    from kemi_core.runtime.dispatch import Dispatcher
    from kemi_core.sip import ParseLimits
    from kemi_core.testing.capture import offline_core

    mods: list[tuple[str, Any]] = [("sl", kemi_sl), ("maxfwd", kemi_maxfwd), ("pv", kemi_pv),
                                   ("textops", kemi_textops), ("xlog", kemi_xlog)]
    params: dict[tuple[str, str], Any] = {}
    if engine == "lua":
        import kemi_engine_lua
        script = work / "route.lua"
        script.write_text(LUA[route])
        mods.append(("app_lua", kemi_engine_lua))
        params[("app_lua", "load")] = str(script)
    elif engine == "python":
        from kemi_engine_python.modules import app_python3
        script = work / "route.py"
        script.write_text(PYTHON[route])
        mods.append(("app_python3", app_python3))
        params[("app_python3", "load")] = str(script)
    elif engine == "jsdt":
        import kemi_engine_jsdt
        script = work / "route.js"
        script.write_text(JSDT[route])
        mods.append(("app_jsdt", kemi_engine_jsdt))
        params[("app_jsdt", "load")] = str(script)
    core, _ = offline_core(*mods, params=params)
    if engine == "native":
        from kemi_core.config.model import RouteBlock
        from kemi_core.config.parser import parse_config_text
        from kemi_core.engine import EngineSpec
        from kemi_core.native.engine import NativeEngine

        blocks: list[RouteBlock] = parse_config_text(NATIVE[route], "bench.cfg").routes
        spec = EngineSpec("native", lambda core: NativeEngine(core, blocks, lambda: blocks))
    else:
        spec = core.engine_specs[engine]
    core.use_engine(spec)  # as the server: built and reloaded by the core
    core.loader.child_init_all(1)  # what a worker does after fork
    null = NullTransport()
    core.attach_transport(null)
    return Dispatcher(core, ParseLimits()), null


def run_one(engine: str, route: str, messages: int, rounds: int) -> dict[str, Any]:
    from kemi_core.runtime.context import RecvInfo
    from kemi_core.testing.udp_client import request

    logging.disable(logging.INFO)  # as a production server: xdbg & co. are below the level
    with tempfile.TemporaryDirectory(prefix="kemi-bench-eng-") as tmp:
        dispatcher, null = build(engine, route, Path(tmp))
        rcv = RecvInfo("udp", "127.0.0.1", 40000, "127.0.0.1", 5060)
        pool = [request(METHODS[i % len(METHODS)], "sip:bob@127.0.0.1", 40000)
                for i in range(600)]
        on_data = dispatcher.on_data
        for data in pool:  # warm up (imports, caches, JIT-less but lazy paths)
            on_data(data, rcv)
        best = float("inf")
        npool = len(pool)
        for _ in range(rounds):
            t0 = time.process_time()
            for i in range(messages):
                on_data(pool[i % npool], rcv)
            best = min(best, time.process_time() - t0)
        errors = dispatcher.stats.script_errors.value
        expected_replies = 0 if route == "empty" else messages * rounds + len(pool)
        if null.count != expected_replies or errors:
            raise SystemExit(f"{engine}/{route}: {null.count} replies sent, {expected_replies} "
                             f"expected; {errors} script errors")
        run_best = engine_run_only(dispatcher, pool, rcv, messages, rounds)
    return {"engine": engine, "route": route, "us_per_msg": round(best / messages * 1e6, 2),
            "run_us_per_msg": round(run_best / messages * 1e6, 2)}


def engine_run_only(dispatcher: Any, pool: list[bytes], rcv: Any, messages: int,
                    rounds: int) -> float:
    """Best CPU seconds of ``engine.run`` alone over ``messages`` fresh contexts (parsed and
    header-checked beforehand, as the dispatcher does): the route and the engine, nothing else."""
    from kemi_core.engine import REQUEST_ROUTE
    from kemi_core.runtime.context import RouteType
    from kemi_core.runtime.dispatch import check_request_headers
    from kemi_core.sip import parse_datagram

    core = dispatcher.core
    run = core.engine.run
    best = float("inf")
    npool = len(pool)
    for _ in range(rounds):
        ctxs = []
        for i in range(messages):
            msg = parse_datagram(pool[i % npool])
            check_request_headers(msg)
            ctxs.append(core.new_context(msg, rcv, RouteType.REQUEST))
        t0 = time.process_time()
        for ctx in ctxs:
            run(REQUEST_ROUTE, ctx)
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--engine", default=",".join(ENGINES))
    ap.add_argument("--one", nargs=2, metavar=("ENGINE", "ROUTE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.messages, args.rounds)))
        return
    engines = [e for e in args.engine.split(",") if e]
    results: dict[str, dict[str, float]] = {}
    for engine in engines:
        res: dict[str, float] = {}
        for route in ROUTES:
            out = subprocess.run([sys.executable, __file__, "--one", engine, route,
                                  "--messages", str(args.messages), "--rounds", str(args.rounds)],
                                 capture_output=True, text=True, check=False)
            if out.returncode != 0:
                sys.exit(f"{engine}/{route} failed:\n{out.stdout}{out.stderr}")
            one = json.loads(out.stdout.strip().splitlines()[-1])
            res[route] = one["us_per_msg"]
            res[f"{route}_run"] = one["run_us_per_msg"]
        for route in ROUTES[1:]:
            res[f"{route}_script"] = round(res[route] - res["empty"], 2)
        results[engine] = res
        print(f"{engine:7} empty {res['empty']:6.2f}  trivial {res['trivial']:6.2f} "
              f"(script {res['trivial_script']:6.2f}, run {res['trivial_run']:6.2f})  "
              f"realistic {res['realistic']:6.2f} (script {res['realistic_script']:6.2f}, "
              f"run {res['realistic_run']:6.2f})  us CPU/msg", flush=True)
    keys = ("trivial", "realistic", "trivial_script", "realistic_script", "empty_run",
            "trivial_run", "realistic_run")
    fastest = {key: min(results, key=lambda e: results[e][key]) for key in keys}
    print(json.dumps({"benchmark": "engines", "messages": args.messages, "rounds": args.rounds,
                      "us_per_msg": results, "fastest": fastest}))


if __name__ == "__main__":
    main()
