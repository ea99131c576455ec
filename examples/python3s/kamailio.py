# Routing logic for app_python3s: module-level functions, called without arguments.
# Relays every request statefully to the callee (CALLEE).
import KSR

CALLEE = "sip:alice@127.0.0.1:5080"


def ksr_script_init():
    KSR.info("===== python3s script init\n")


def ksr_script_child_init(rank):
    KSR.info(f"===== python3s child init ({rank})\n")


def ksr_request_route():
    KSR.info("===== request - from kamailio python3s script\n")
    if KSR.maxfwd.process_maxfwd(10) < 0:
        KSR.sl.send_reply(483, "Too Many Hops")
        return 1
    KSR.seturi(CALLEE)
    KSR.tm.t_on_branch("ksr_branch_route_one")
    KSR.tm.t_on_reply("ksr_onreply_route_one")
    KSR.tm.t_on_failure("ksr_failure_route_one")
    if KSR.tm.t_relay() < 0:
        KSR.sl.send_reply(500, "Server error")
    return 1


def ksr_reply_route():
    KSR.info("===== response - from kamailio python3s script\n")
    return 1


def ksr_branch_route_one():
    KSR.info("===== branch route - from kamailio python3s script\n")
    return 1


def ksr_onreply_route_one():
    KSR.xlog.xinfo("===== onreply route - $rs $rr from kamailio python3s script\n")
    return 1


def ksr_failure_route_one():
    KSR.xlog.xinfo("===== failure route - $T_reply_code from kamailio python3s script\n")
    return 1
