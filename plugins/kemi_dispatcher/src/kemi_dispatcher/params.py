"""dispatcher's module parameters (Kamailio 5.6's names and defaults) and the settings read
from them at mod_init."""

from __future__ import annotations

import attrs

from kemi_core.api import Core, ModuleError

MODULE = "dispatcher"

#: (name, kind, default, what it does here)
PARAMS: tuple[tuple[str, type, object, str], ...] = (
    ("list_file", str, "/etc/kamailio/dispatcher.list", "the destination list file"),
    ("db_url", str, "", "load the destinations from this database instead of the file"),
    ("table_name", str, "dispatcher", "the destinations table"),
    ("setid_col", str, "setid", "set id column"),
    ("destination_col", str, "destination", "destination URI column"),
    ("flags_col", str, "flags", "flags column"),
    ("priority_col", str, "priority", "priority column"),
    ("attrs_col", str, "attrs", "attributes column"),
    ("force_dst", int, 1, "0: a select fails when $du is already set"),
    ("flags", int, 0, "1: hash only the URI user; 2: keep the other destinations for failover"),
    ("use_default", int, 0, "the last destination of a set is used only when all others fail"),
    ("xavp_dst", str, "_dsdst_", "XAVP with the selected destinations (failover list)"),
    ("xavp_dst_mode", int, 0, "1: leave the attrs field out of xavp_dst"),
    ("xavp_ctx", str, "_dsctx_", "XAVP with the selection context (cnt)"),
    ("xavp_ctx_mode", int, 0, "1: leave the cnt field out of xavp_ctx"),
    ("hash_pvar", str, "", "what algorithm 7 hashes (a string with pseudo-variables)"),
    ("setid_pvname", str, "", "PV set to the set id matched by ds_is_from_list()"),
    ("attrs_pvname", str, "", "PV set to the attributes matched by ds_is_from_list()"),
    ("ds_ping_method", str, "OPTIONS", "method of the keepalive requests"),
    ("ds_ping_from", str, "sip:dispatcher@localhost", "From URI of the keepalive requests"),
    ("ds_ping_interval", int, 0, "seconds between keepalive rounds (0: none)"),
    ("ds_ping_reply_codes", str, "", "replies besides 200 that count as alive: class=2;code=403"),
    ("ds_probing_mode", int, 0, "0 probing ones (once), 1 all, 2 inactive+probing, 3 probing ones"),
    ("ds_probing_threshold", int, 1, "failed keepalives before a destination is inactive"),
    ("ds_inactive_threshold", int, 1, "answered keepalives before it is active again"),
    ("ds_ping_latency_stats", int, 0, "accepted (latency is not measured)"),
    ("ds_latency_estimator_alpha", int, 900, "accepted (latency is not measured)"),
    ("ds_hash_size", int, 0, "enables call-load dispatching (alg 10) when > 0"),
    ("ds_hash_expire", int, 7200, "seconds a confirmed call counts as load without its BYE"),
    ("ds_hash_initexpire", int, 7200, "seconds an unconfirmed call counts as load"),
    ("ds_hash_check_interval", int, 30, "accepted (expiry is the shared store's)"),
    ("outbound_proxy", str, "", "where keepalives are sent instead of the destination"),
    ("ds_default_socket", str, "", "socket requests and keepalives leave from (no socket=)"),
    ("ds_default_sockname", str, "", "accepted"),
    ("ds_timer_mode", int, 0, "accepted (keepalives run in the main process)"),
    ("event_callback", str, "", "accepted (destination up/down is logged)"),
    ("event_callback_mode", int, 0, "accepted"),
    ("ds_attrs_none", int, 0, "give none=yes to destinations without attributes"),
    ("ds_db_extra_attrs", str, "", "accepted"),
    ("ds_load_mode", int, 0, "1: a bad destination stops the load"),
    ("reload_delta", int, 5, "minimum seconds between two reloads"),
    ("ds_dns_mode", int, 1, "accepted (names are resolved at load)"),
    ("ds_dns_interval", int, 600, "accepted"),
    ("ds_dns_ttl", int, 0, "accepted"),
)

FLAG_USER_ONLY, FLAG_FAILOVER = 1, 2


@attrs.frozen
class Settings:
    list_file: str
    db_url: str
    table_name: str
    columns: dict[str, str]
    force_dst: bool
    user_only: bool
    failover: bool
    use_default: bool
    xavp_dst: str
    xavp_dst_attrs: bool
    xavp_ctx: str
    xavp_ctx_cnt: bool
    hash_pvar: str
    setid_pvname: str
    attrs_pvname: str
    ping_method: str
    ping_from: str
    ping_interval: int
    ping_reply_codes: tuple[tuple[str, int], ...]
    probing_mode: int
    probing_threshold: int
    inactive_threshold: int
    hash_size: int
    hash_expire: int
    hash_initexpire: int
    outbound_proxy: str
    default_socket: str
    attrs_none: bool
    strict_load: bool
    reload_delta: int


def declare(core: Core) -> None:
    for name, kind, default, doc in PARAMS:
        core.declare_param(MODULE, name, kind, default, doc=doc)


def parse_reply_codes(text: str) -> tuple[tuple[str, int], ...]:
    """``class=2;code=403`` -> (("class", 2), ("code", 403)); ModuleError when malformed."""
    out = []
    for part in text.split(";"):
        if not part.strip():
            continue
        name, _, value = part.partition("=")
        name = name.strip().lower()
        try:
            number = int(value.strip())
        except ValueError:
            number = -1
        if name == "class" and 1 <= number <= 6 or name == "code" and 100 <= number <= 699:
            out.append((name, number))
        else:
            raise ModuleError(f"dispatcher: bad ds_ping_reply_codes entry {part.strip()!r}")
    return tuple(out)


def read(core: Core) -> Settings:
    p = lambda name: core.modparam(MODULE, name)  # noqa: E731
    flags = int(p("flags"))
    mode = int(p("ds_probing_mode"))
    if mode not in (0, 1, 2, 3):
        raise ModuleError(f"dispatcher: ds_probing_mode must be 0..3, not {mode}")
    return Settings(
        list_file=str(p("list_file")), db_url=str(p("db_url")), table_name=str(p("table_name")),
        columns={c: str(p(f"{c}_col")) for c in
                 ("setid", "destination", "flags", "priority", "attrs")},
        force_dst=bool(int(p("force_dst"))), user_only=bool(flags & FLAG_USER_ONLY),
        failover=bool(flags & FLAG_FAILOVER), use_default=bool(int(p("use_default"))),
        xavp_dst=str(p("xavp_dst")), xavp_dst_attrs=not int(p("xavp_dst_mode")) & 1,
        xavp_ctx=str(p("xavp_ctx")), xavp_ctx_cnt=not int(p("xavp_ctx_mode")) & 1,
        hash_pvar=str(p("hash_pvar")), setid_pvname=str(p("setid_pvname")),
        attrs_pvname=str(p("attrs_pvname")), ping_method=str(p("ds_ping_method")).upper(),
        ping_from=str(p("ds_ping_from")), ping_interval=max(int(p("ds_ping_interval")), 0),
        ping_reply_codes=parse_reply_codes(str(p("ds_ping_reply_codes"))), probing_mode=mode,
        probing_threshold=max(int(p("ds_probing_threshold")), 1),
        inactive_threshold=max(int(p("ds_inactive_threshold")), 1),
        hash_size=int(p("ds_hash_size")), hash_expire=int(p("ds_hash_expire")),
        hash_initexpire=int(p("ds_hash_initexpire")), outbound_proxy=str(p("outbound_proxy")),
        default_socket=str(p("ds_default_socket")).strip(),
        attrs_none=bool(int(p("ds_attrs_none"))), strict_load=bool(int(p("ds_load_mode"))),
        reload_delta=max(int(p("reload_delta")), 0))
