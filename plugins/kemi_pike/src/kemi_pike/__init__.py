"""pike.so: flood detection per source IP address (Kamailio's pike module).

Each request's source address is counted in sampling windows of ``sampling_time_unit``
seconds (aligned on the clock, so every worker shares the same windows). An address is *hot*
when the current or the previous window holds more than ``reqs_density_per_unit`` requests:
``pike_check_req()`` then returns -2 the first time (a new flood) and -1 while it lasts; it
returns 1 otherwise. A flood therefore stops being blocked one window after it stops, and an
address nobody heard from for ``remove_latency`` seconds is forgotten.

The counters live in the shared store (``pike:ips``), one atomic update per request, so all
workers count together. Kamailio builds a tree of address bytes first, so its very first
flooding address needs up to 3x the density before it is blocked; here the limit is the
density itself, for every address.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import Any

import attrs

from kemi_core.api import (
    CfgFunction,
    Core,
    KemiError,
    KemiExport,
    MsgContext,
    SharedTable,
    export,
    hookimpl,
    shared_store,
)

log = logging.getLogger("kemi.pike")

MODULE = "pike"
TABLE = "pike:ips"


@attrs.frozen
class PikeSettings:
    unit: int = 2
    density: int = 30
    remove_latency: int = 120
    log_level: int = 1

    @property
    def keep(self) -> float:
        """How long an idle address is remembered (never less than two windows, so the
        previous window of a flood still counts)."""
        return float(max(self.remove_latency, 2 * self.unit))


class _State:
    settings = PikeSettings()
    table: SharedTable | None = None


_state = _State()


def exports() -> list[KemiExport]:
    return [
        export(MODULE, "pike_check_req", pike_check_req, ""),
        export(MODULE, "pike_check_ip", pike_check_ip, "s"),
    ]


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "sampling_time_unit", int, 2,
                       doc="seconds of one sampling window")
    core.declare_param(MODULE, "reqs_density_per_unit", int, 30,
                       doc="requests per window above which an address is blocked")
    core.declare_param(MODULE, "remove_latency", int, 120,
                       doc="seconds an address is remembered after its last request")
    core.declare_param(MODULE, "pike_log_level", int, 1,
                       doc="Kamailio log level of the blocking/unblocking reports")
    core.add_cfg_function(CfgFunction(MODULE, "pike_check_req", lambda ctx: pike_check_req(ctx)))
    core.add_cfg_function(CfgFunction(MODULE, "pike_check_ip", _cfg_check_ip, 1, 1))
    core.add_rpc("pike.top", _rpc_top, "addresses counted: [HOT (default) | WARM | ALL]")
    core.add_rpc("pike.list", _rpc_top, "alias of pike.top")


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    def p(name: str) -> int:
        return int(core.modparam(MODULE, name))

    settings = PikeSettings(p("sampling_time_unit"), p("reqs_density_per_unit"),
                            p("remove_latency"), p("pike_log_level"))
    if settings.unit <= 0 or settings.density <= 0:
        raise KemiError("pike: sampling_time_unit and reqs_density_per_unit must be positive")
    _state.settings = settings
    _state.table = shared_store(core).table(TABLE)


# ---- the counting ------------------------------------------------------------------------
#: One address's entry: (window index, requests in the previous window, in this one, hot).
Hit = tuple[int, int, int, bool]


def count(old: Hit | None, window: int, density: int) -> Hit:
    """The entry after one more request in ``window``."""
    if old is None or window > old[0] + 1:
        prev, curr = 0, 1
    elif window == old[0]:
        prev, curr = old[1], old[2] + 1
    else:  # the next window: this one's count becomes the previous one
        prev, curr = old[2], 1
    return (window, prev, curr, prev > density or curr > density)


def check(ip: str, now: float | None = None) -> int:
    """Count a request from ``ip``: 1 fine, -2 a new flood, -1 a flood already reported."""
    table = _state.table
    if table is None:
        return 1  # Kamailio: an internal problem never blocks
    s = _state.settings
    window = int((time.time() if now is None else now) // s.unit)
    was_red = False

    def bump(old: Hit | None) -> Hit:
        nonlocal was_red
        was_red = bool(old and old[3])
        return count(old, window, s.density)

    try:
        hit = table.update(ip, bump, default=None, ttl=s.keep)
    except Exception:  # noqa: BLE001 - the store failing must not block traffic
        log.exception("pike: cannot count %s", ip)
        return 1
    if not hit[3]:
        if was_red and s.log_level >= 0:
            log.log(_level(s.log_level), "PIKE - UNBLOCKing ip %s", ip)
        return 1
    if was_red:
        return -1
    if s.log_level >= 0:
        log.log(_level(s.log_level), "PIKE - BLOCKing ip %s (%d requests in %d s)", ip,
                max(hit[1], hit[2]), s.unit)
    return -2


def _level(kamailio_level: int) -> int:
    return {-1: logging.ERROR, 0: logging.WARNING, 1: logging.WARNING,
            2: logging.INFO}.get(kamailio_level, logging.DEBUG)


def pike_check_req(ctx: MsgContext) -> int:
    """Count this request against its source address: 1 when it may pass, -2 when the address
    has just been detected as flooding, -1 while the flood lasts."""
    return check(ctx.rcv.src_ip)


def pike_check_ip(ctx: MsgContext, ip: str) -> int:
    """pike_check_req for the address ``ip`` (-1 is not returned for a malformed address:
    it is counted as 1, never blocked)."""
    try:
        text = str(ipaddress.ip_address(ip.strip().strip("[]")))
    except ValueError:
        log.error("pike_check_ip: %r is not an IP address", ip)
        return 1
    return check(text)


def _cfg_check_ip(ctx: MsgContext, ip: str) -> int:
    return pike_check_ip(ctx, ctx.core.pv.format(ip)(ctx) if "$" in ip else ip)


# ---- RPC ---------------------------------------------------------------------------------
def _rpc_top(core: Core, params: list[Any]) -> dict[str, Any]:
    """Kamailio's pike.top: addresses with their counts, the hot ones by default."""
    which = str(params[0]).upper() if params else "HOT"
    if which not in ("HOT", "WARM", "ALL"):
        raise KemiError("pike.top: the filter is HOT, WARM or ALL")
    table = _state.table
    s = _state.settings
    rows = []
    now = time.time()
    window = int(now // s.unit)
    for ip, (last, prev, curr, red) in table.items() if table is not None else []:
        if last == window - 1:  # the entry's window has ended: shift it for display
            prev, curr = curr, 0
        elif last < window - 1:
            prev, curr = 0, 0
        status = ("HOT" if red and max(prev, curr) > s.density else
                  "WARM" if max(prev, curr) > s.density // 2 else "")
        if which == "ALL" or status == which:
            expires = table.expires_at(ip) if table is not None else None
            rows.append({"ip_addr": ip, "leaf_hits_prev": prev, "leaf_hits_curr": curr,
                         "expires": int(max(0, (expires or now) - now)), "status": status})
    rows.sort(key=lambda r: (-(r["leaf_hits_prev"] + r["leaf_hits_curr"]), r["ip_addr"]))
    return {"max_hits": s.density, "list": rows, "number_of_rows": len(rows)}
