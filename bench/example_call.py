"""Calls through the call logic of Kamailio's official example (kamailio-basic-kemi-lua.lua and
the default kamailio.cfg), kemi and Kamailio 5.6 side by side: the script modules of the real
call path (maxfwd, sanity, nathelper, siputils, rr, tm) without auth, registrar or db, so the
figure isolates them.

The routing is the example's: reqinit (maxfwd, keepalive, sanity_check), NAT detection
(force_rport, nat_uac_test(19), set_contact_alias), CANCEL, in-dialog requests along the
Record-Route (has_totag, loose_route, handle_ruri_alias, NAT management with check_route_param),
t_precheck_trans/t_check_trans, Route removal, record_route, and relay with branch, reply and
failure routes (add_rr_param(";nat=yes") in the branch route). The location lookup is replaced by
$du to the callee, rtpproxy is left out. The caller's Contact is a private address (a caller
behind NAT), so nathelper's alias and rr's nat=yes parameter are on the path.

SIPp's caller (scenarios/rr_uac.xml) sends the ACK and BYE along the Record-Route, the callee
(scenarios/rr_uas.xml) copies it into its replies. In process, ``bench/callpath.py --script
example`` runs the same cfg and scripts without sockets (bytecodes, callgrind).

    python bench/example_call.py [--engine lua,native] [--interleave 3] [--rate 300]
                                 [--seconds 10] [--children 1]

``--children N``: both servers with N workers (the example's own cfg has 2, Debian's 8).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stateful  # noqa: E402

from kemi_core.testing.kamailio import kamailio_available  # noqa: E402
from kemi_core.testing.sipp import sipp_available  # noqa: E402

HERE = Path(__file__).resolve().parent

LUA = """
FLT_ACC=1
FLT_ACCMISSED=2
FLT_ACCFAILED=3
FLT_NATS=5
FLB_NATB=6

function ksr_request_route()
    ksr_route_reqinit()
    ksr_route_natdetect()
    if KSR.is_CANCEL() then
        if KSR.tm.t_check_trans() > 0 then
            ksr_route_relay()
        end
        return 1
    end
    ksr_route_withindlg()
    if KSR.tmx.t_precheck_trans() > 0 then
        KSR.tm.t_check_trans()
        return 1
    end
    if KSR.tm.t_check_trans() == 0 then return 1 end
    KSR.hdr.remove("Route")
    if KSR.is_method_in("IS") then
        KSR.rr.record_route()
    end
    if KSR.is_INVITE() then
        KSR.setflag(FLT_ACC)
    end
    if KSR.corex.has_ruri_user() < 0 then
        KSR.sl.sl_send_reply(484, "Address Incomplete")
        return 1
    end
    KSR.pv.sets("$du", "sip:127.0.0.1:{uas_port}")
    ksr_route_relay()
    return 1
end

function ksr_route_relay()
    if KSR.is_method_in("IBSU") then
        if KSR.tm.t_is_set("branch_route") < 0 then
            KSR.tm.t_on_branch("ksr_branch_manage")
        end
    end
    if KSR.is_method_in("ISU") then
        if KSR.tm.t_is_set("onreply_route") < 0 then
            KSR.tm.t_on_reply("ksr_onreply_manage")
        end
    end
    if KSR.is_INVITE() then
        if KSR.tm.t_is_set("failure_route") < 0 then
            KSR.tm.t_on_failure("ksr_failure_manage")
        end
    end
    if KSR.tm.t_relay() < 0 then
        KSR.sl.sl_reply_error()
    end
    KSR.x.exit()
end

function ksr_route_reqinit()
    local ua = KSR.kx.gete_ua()
    if string.find(ua, "friendly-scanner") or string.find(ua, "sipcli") then
        KSR.sl.sl_send_reply(200, "OK")
        KSR.x.exit()
    end
    if KSR.maxfwd.process_maxfwd(10) < 0 then
        KSR.sl.sl_send_reply(483, "Too Many Hops")
        KSR.x.exit()
    end
    if KSR.is_OPTIONS() and KSR.is_myself_ruri() and KSR.corex.has_ruri_user() < 0 then
        KSR.sl.sl_send_reply(200, "Keepalive")
        KSR.x.exit()
    end
    if KSR.sanity.sanity_check(1511, 7) < 0 then
        KSR.err("Malformed SIP message from " .. KSR.kx.get_srcip() .. "\\n")
        KSR.x.exit()
    end
end

function ksr_route_withindlg()
    if KSR.siputils.has_totag() < 0 then return 1 end
    if KSR.rr.loose_route() > 0 then
        ksr_route_dlguri()
        if KSR.is_BYE() then
            KSR.setflag(FLT_ACC)
            KSR.setflag(FLT_ACCFAILED)
        elseif KSR.is_ACK() then
            ksr_route_natmanage()
        elseif KSR.is_NOTIFY() then
            KSR.rr.record_route()
        end
        ksr_route_relay()
        KSR.x.exit()
    end
    if KSR.is_ACK() then
        if KSR.tm.t_check_trans() > 0 then
            ksr_route_relay()
        end
        KSR.x.exit()
    end
    KSR.sl.sl_send_reply(404, "Not here")
    KSR.x.exit()
end

function ksr_route_natdetect()
    KSR.force_rport()
    if KSR.nathelper.nat_uac_test(19) > 0 then
        if KSR.is_REGISTER() then
            KSR.nathelper.fix_nated_register()
        elseif KSR.siputils.is_first_hop() > 0 then
            KSR.nathelper.set_contact_alias()
        end
        KSR.setflag(FLT_NATS)
    end
    return 1
end

function ksr_route_natmanage()
    if KSR.siputils.is_request() > 0 then
        if KSR.siputils.has_totag() > 0 then
            if KSR.rr.check_route_param("nat=yes") > 0 then
                KSR.setbflag(FLB_NATB)
            end
        end
    end
    if not (KSR.isflagset(FLT_NATS) or KSR.isbflagset(FLB_NATB)) then
        return 1
    end
    if KSR.siputils.is_request() > 0 then
        if KSR.siputils.has_totag() < 0 then
            if KSR.tmx.t_is_branch_route() > 0 then
                KSR.rr.add_rr_param(";nat=yes")
            end
        end
    end
    if KSR.siputils.is_reply() > 0 then
        if KSR.isbflagset(FLB_NATB) then
            KSR.nathelper.set_contact_alias()
        end
    end
    return 1
end

function ksr_route_dlguri()
    if not KSR.isdsturiset() then
        KSR.nathelper.handle_ruri_alias()
    end
    return 1
end

function ksr_branch_manage()
    ksr_route_natmanage()
    return 1
end

function ksr_onreply_manage()
    local scode = KSR.kx.get_status()
    if scode > 100 and scode < 299 then
        ksr_route_natmanage()
    end
    return 1
end

function ksr_failure_manage()
    ksr_route_natmanage()
    return 1
end
"""

NATIVE = """
#!define FLT_ACC 1
#!define FLT_ACCFAILED 3
#!define FLT_NATS 5
#!define FLB_NATB 6

request_route {
    route(REQINIT);
    route(NATDETECT);
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            route(RELAY);
        }
        exit;
    }
    route(WITHINDLG);
    if (t_precheck_trans()) {
        t_check_trans();
        exit;
    }
    t_check_trans();
    remove_hf("Route");
    if (is_method("INVITE|SUBSCRIBE")) {
        record_route();
    }
    if (is_method("INVITE")) {
        setflag(FLT_ACC);
    }
    if ($rU == $null) {
        sl_send_reply("484", "Address Incomplete");
        exit;
    }
    $du = "sip:127.0.0.1:{uas_port}";
    route(RELAY);
    exit;
}

route[RELAY] {
    if (is_method("INVITE|BYE|SUBSCRIBE|UPDATE")) {
        if (!t_is_set("branch_route")) {
            t_on_branch("MANAGE_BRANCH");
        }
    }
    if (is_method("INVITE|SUBSCRIBE|UPDATE")) {
        if (!t_is_set("onreply_route")) {
            t_on_reply("MANAGE_REPLY");
        }
    }
    if (is_method("INVITE")) {
        if (!t_is_set("failure_route")) {
            t_on_failure("MANAGE_FAILURE");
        }
    }
    if (!t_relay()) {
        sl_reply_error();
    }
    exit;
}

route[REQINIT] {
    if ($ua =~ "friendly-scanner|sipcli") {
        sl_send_reply("200", "OK");
        exit;
    }
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {
        sl_send_reply("200", "Keepalive");
        exit;
    }
    if (!sanity_check("1511", "7")) {
        xlog("Malformed SIP message from $si:$sp\\n");
        exit;
    }
}

route[WITHINDLG] {
    if (!has_totag()) {
        return;
    }
    if (loose_route()) {
        route(DLGURI);
        if (is_method("BYE")) {
            setflag(FLT_ACC);
            setflag(FLT_ACCFAILED);
        } else if (is_method("ACK")) {
            route(NATMANAGE);
        } else if (is_method("NOTIFY")) {
            record_route();
        }
        route(RELAY);
        exit;
    }
    if (is_method("ACK")) {
        if (t_check_trans()) {
            route(RELAY);
            exit;
        } else {
            exit;
        }
    }
    sl_send_reply("404", "Not here");
    exit;
}

route[NATDETECT] {
    force_rport();
    if (nat_uac_test("19")) {
        if (is_method("REGISTER")) {
            fix_nated_register();
        } else {
            if (is_first_hop()) {
                set_contact_alias();
            }
        }
        setflag(FLT_NATS);
    }
    return;
}

route[NATMANAGE] {
    if (is_request()) {
        if (has_totag()) {
            if (check_route_param("nat=yes")) {
                setbflag(FLB_NATB);
            }
        }
    }
    if (!(isflagset(FLT_NATS) || isbflagset(FLB_NATB))) {
        return;
    }
    if (is_request()) {
        if (!has_totag()) {
            if (t_is_branch_route()) {
                add_rr_param(";nat=yes");
            }
        }
    }
    if (is_reply()) {
        if (isbflagset(FLB_NATB)) {
            if (is_first_hop()) {
                set_contact_alias();
            }
        }
    }
    return;
}

route[DLGURI] {
    if (!isdsturiset()) {
        handle_ruri_alias();
    }
    return;
}

branch_route[MANAGE_BRANCH] {
    route(NATMANAGE);
}

onreply_route[MANAGE_REPLY] {
    if (status =~ "[12][0-9][0-9]") {
        route(NATMANAGE);
    }
}

failure_route[MANAGE_FAILURE] {
    route(NATMANAGE);
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
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "corex.so"
loadmodule "kemix.so"
loadmodule "kex.so"
loadmodule "nathelper.so"
modparam("rr", "enable_full_lr", 0)
modparam("rr", "append_fromtag", 0)
modparam("nathelper", "received_avp", "$avp(RECEIVED)")
"""

#: engine -> (Kamailio module file it needs, script suffix, script text, cfg tail)
ENGINES: dict[str, tuple[str, str, str, str]] = {
    "lua": ("app_lua.so", ".lua", LUA,
            'loadmodule "app_lua.so"\nmodparam("app_lua", "load", "{script}")\ncfgengine "lua"\n'),
    "native": ("tm.so", "", "", NATIVE),
}


#: the cfg's workers (--children)
CHILDREN = 1


def write_setup(engine: str, name: str, work: Path,
                uas_port: int | None = None) -> tuple[Path, int, int]:
    """The engine's kamailio.cfg and script under ``name`` in ``work``: (cfg, port, UAS port)
    (bench/stateful.py's, on this benchmark's cfg; bench/callpath.py's harness uses it too)."""
    head = CFG.replace("children=1\n", f"children={CHILDREN}\n")
    return stateful.write_setup(engine, name, work, uas_port, ENGINES, head)


def run_interleaved(engine: str, work: Path, rate: int, seconds: int, rounds: int) -> dict:
    """kemi and Kamailio 5.6 on the engine's cfg, ``rounds`` alternated SIPp runs at ``rate``
    calls/s (the caller and callee follow the Record-Route): CPU per call of each and the
    median ratio kemi / Kamailio."""
    return stateful.run_interleaved(engine, work, rate, seconds, rounds, setup=write_setup,
                                    tag="example", scenario=str(HERE / "scenarios" / "rr_uac.xml"),
                                    sipp_args=(), uas_scenario=HERE / "scenarios" / "rr_uas.xml")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="lua,native", help=f"of {', '.join(ENGINES)}")
    parser.add_argument("--interleave", type=int, default=3, metavar="ROUNDS")
    parser.add_argument("--rate", type=int, default=300, help="calls per second")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--children", type=int, default=1, help="workers of both servers")
    opts = parser.parse_args()
    global CHILDREN
    CHILDREN = opts.children
    engines = [e for e in opts.engine.split(",") if e]
    if set(engines) - set(ENGINES):
        parser.error(f"unknown engine in {opts.engine!r}: {', '.join(ENGINES)}")
    if not sipp_available():
        print(json.dumps({"error": "sipp not installed (apt-get install sip-tester)"}))
        return 1
    sections: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="kemi-bench-example-") as tmp:
        for engine in engines:
            if not kamailio_available(ENGINES[engine][0], "nathelper.so", "sanity.so"):
                print(f"kamailio 5.6 with {ENGINES[engine][0]} not installed: skipping {engine}")
                continue
            print(f"engine {engine}, interleaved at {opts.rate}/s:", flush=True)
            sections[engine] = run_interleaved(engine, Path(tmp), opts.rate, opts.seconds,
                                               opts.interleave)
            print(f"  median CPU ratio kemi / Kamailio: {sections[engine]['median_ratio']}",
                  flush=True)
    print(json.dumps({"benchmark": "example_call", "children": opts.children,
                      "interleaved": sections}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
