"""dispatcher.so: load balancing and failover over destination sets (Kamailio's dispatcher).

Destination sets come from ``list_file`` (Kamailio's format: ``setid uri flags priority
attrs``) or, with ``db_url``, from the ``dispatcher`` table. A selection picks a destination of a
set with one of Kamailio's algorithms (0 hash Call-ID, 1 hash From URI, 2 hash To URI, 3 hash
R-URI, 4 round-robin, 5 hash auth username, 6 random, 7 hash ``hash_pvar``, 8 priority,
9 weight, 10 call load, 11 relative weight, 12 all at once, 13 highest priority round-robin,
14 round-robin or priority) and writes it to ``$du`` (ds_select_dst), to the R-URI's host and
port (ds_select_domain) or only to the XAVP (ds_select). With ``flags`` bit 2 the other usable
destinations wait in ``$xavp(_dsdst_)`` for ``ds_next_dst()`` / ``ds_next_domain()`` in a
failure route.

The list and every destination's state (active, inactive, trying, disabled, probing) live in the
server's shared store: a state set by ``ds_mark_dst()`` in one worker, by a keepalive or by
``dispatcher.set_state`` is what every worker's next selection sees. Keepalives
(``ds_ping_interval``, ``ds_probing_mode``, ``ds_probing_threshold``, ``ds_inactive_threshold``,
``ds_ping_reply_codes``, ``ds_ping_method``, ``ds_ping_from``) are sent once for the whole
server, by its main process. RPCs: ``dispatcher.list``, ``dispatcher.set_state``,
``dispatcher.reload``, ``dispatcher.ping_active``, ``dispatcher.hash``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kemi_core.api import (
    CfgFunction,
    Core,
    DbError,
    KemiExport,
    ModuleError,
    MsgContext,
    export,
    hookimpl,
)
from kemi_dispatcher import marks, params, rpc
from kemi_dispatcher import select as sel
from kemi_dispatcher.destinations import ListError
from kemi_dispatcher.params import MODULE
from kemi_dispatcher.pinger import Pinger
from kemi_dispatcher.service import DsService

log = logging.getLogger("kemi.dispatcher")


class _State:
    svc: DsService | None = None


_state = _State()


def _svc(ctx: MsgContext) -> DsService:
    svc = _state.svc
    if svc is None:
        raise ModuleError("dispatcher is not initialised")
    return svc


# ---- KEMI functions -------------------------------------------------------------------------
def ds_select_dst(ctx: MsgContext, setid: int, alg: int) -> int:
    """Pick a destination of set ``setid`` with algorithm ``alg`` and put it in $du: 1 picked,
    -1 none usable (or no such set)."""
    return sel.select(_svc(ctx), ctx, setid, alg, 0, sel.TO_DST)


def ds_select_dst_limit(ctx: MsgContext, setid: int, alg: int, limit: int) -> int:
    """ds_select_dst() keeping at most ``limit`` destinations for failover."""
    return sel.select(_svc(ctx), ctx, setid, alg, limit, sel.TO_DST)


def ds_select_domain(ctx: MsgContext, setid: int, alg: int) -> int:
    """Pick a destination and write its host, port and parameters into the R-URI."""
    return sel.select(_svc(ctx), ctx, setid, alg, 0, sel.TO_DOMAIN)


def ds_select_domain_limit(ctx: MsgContext, setid: int, alg: int, limit: int) -> int:
    """ds_select_domain() keeping at most ``limit`` destinations for failover."""
    return sel.select(_svc(ctx), ctx, setid, alg, limit, sel.TO_DOMAIN)


def ds_select(ctx: MsgContext, setid: int, alg: int) -> int:
    """Pick destinations into the XAVP only ($du and the R-URI unchanged)."""
    return sel.select(_svc(ctx), ctx, setid, alg, 0, sel.TO_XAVP)


def ds_select_limit(ctx: MsgContext, setid: int, alg: int, limit: int) -> int:
    """ds_select() keeping at most ``limit`` destinations."""
    return sel.select(_svc(ctx), ctx, setid, alg, limit, sel.TO_XAVP)


def ds_select_routes(ctx: MsgContext, rules: str, mode: str) -> int:
    """Select over several sets, ``rules`` "set=alg;set=alg", the first address going to
    ``mode`` d ($du), r (R-URI) or x (XAVP only)."""
    return _select_routes(ctx, rules, mode, 0)


def ds_select_routes_limit(ctx: MsgContext, rules: str, mode: str, limit: int) -> int:
    """ds_select_routes() keeping at most ``limit`` destinations."""
    return _select_routes(ctx, rules, mode, limit)


def ds_next_dst(ctx: MsgContext) -> int:
    """Use the next destination of the failover list as $du (a failure route): 1, or -1 when
    there is none left."""
    return sel.next_dst(_svc(ctx), ctx, sel.TO_DST)


def ds_next_domain(ctx: MsgContext) -> int:
    """Use the next destination of the failover list in the R-URI: 1, or -1 when none left."""
    return sel.next_dst(_svc(ctx), ctx, sel.TO_DOMAIN)


def ds_set_dst(ctx: MsgContext) -> int:
    """Put the current destination of the failover list in $du again."""
    return sel.set_dst(_svc(ctx), ctx, sel.TO_DST)


def ds_set_domain(ctx: MsgContext) -> int:
    """Put the current destination of the failover list in the R-URI again."""
    return sel.set_dst(_svc(ctx), ctx, sel.TO_DOMAIN)


def ds_mark_dst(ctx: MsgContext) -> int:
    """Mark the destination last used inactive."""
    return ds_mark_dst_state(ctx, "i")


def ds_mark_dst_state(ctx: MsgContext, state: str) -> int:
    """Mark the destination last used: a active, i inactive, t trying (counts a failure),
    d disabled; a trailing p also marks it for probing."""
    svc = _svc(ctx)
    target = sel.current_target(svc, ctx)
    if target is None:
        return -1
    return marks.mark(svc, target[0], target[1], state)


def ds_mark_addr(ctx: MsgContext, state: str, setid: int, uri: str) -> int:
    """Set the state of destination ``uri`` of set ``setid``."""
    return marks.mark(_svc(ctx), setid, uri, state)


def ds_is_from_lists(ctx: MsgContext) -> int:
    """1 when the request comes from a destination of any set (IP and port)."""
    return marks.is_from_list(_svc(ctx), ctx)


def ds_is_from_list(ctx: MsgContext, group: int) -> int:
    """1 when the request comes from a destination of set ``group`` (-1: any set)."""
    return marks.is_from_list(_svc(ctx), ctx, group)


def ds_is_from_list_mode(ctx: MsgContext, group: int, mode: int) -> int:
    """ds_is_from_list() with match ``mode`` bits: 1 any port, 2 any protocol, 4 active only."""
    return marks.is_from_list(_svc(ctx), ctx, group, mode)


def ds_is_from_list_uri(ctx: MsgContext, group: int, mode: int, uri: str) -> int:
    """ds_is_from_list() matching the address of ``uri`` instead of the source."""
    return marks.is_from_list(_svc(ctx), ctx, group, mode, uri)


def ds_list_exists(ctx: MsgContext, group: int) -> int:
    """1 when set ``group`` exists, else -1."""
    return marks.list_exists(_svc(ctx), group)


def ds_is_active(ctx: MsgContext, group: int) -> int:
    """1 when set ``group`` has an active destination, else -1."""
    return marks.is_active(_svc(ctx), group)


def ds_is_active_uri(ctx: MsgContext, group: int, uri: str) -> int:
    """1 when destination ``uri`` of set ``group`` is active, else -1."""
    return marks.is_active(_svc(ctx), group, uri)


def ds_load_update(ctx: MsgContext) -> int:
    """Call load: BYE/CANCEL remove the call's load, a 2xx to INVITE confirms it."""
    return _svc(ctx).call_load.update(ctx)


def ds_load_unset(ctx: MsgContext) -> int:
    """Call load: remove the load of this call."""
    return _svc(ctx).call_load.unset(ctx)


def ds_reload(ctx: MsgContext) -> int:
    """Load the destinations again (file or table): 1, or -1 (the current list stays)."""
    return _svc(ctx).try_reload()


def _select_routes(ctx: MsgContext, rules: str, mode: str, limit: int) -> int:
    svc = _svc(ctx)
    where = {"0": sel.TO_DST, "d": sel.TO_DST, "1": sel.TO_DOMAIN, "r": sel.TO_DOMAIN,
             "2": sel.TO_XAVP, "x": sel.TO_XAVP}.get(mode[:1].lower())
    if where is None:
        log.error("dispatcher: ds_select_routes: bad mode %r", mode)
        return -1
    chosen = 0
    for rule in rules.split(";"):
        group, _, alg = rule.partition("=")
        try:
            setid, algo = int(group), int(alg)
        except ValueError:
            log.error("dispatcher: ds_select_routes: bad rule %r", rule)
            return -1
        first = sel.TO_XAVP if chosen else where
        if sel.select(svc, ctx, setid, algo, limit, first) > 0:
            chosen += 1
    return 1 if chosen else -1


def exports() -> list[KemiExport]:
    table: list[tuple[str, Callable[..., int], str]] = [
        ("ds_select", ds_select, "ii"),
        ("ds_select_limit", ds_select_limit, "iii"),
        ("ds_select_domain", ds_select_domain, "ii"),
        ("ds_select_domain_limit", ds_select_domain_limit, "iii"),
        ("ds_next_domain", ds_next_domain, ""),
        ("ds_set_domain", ds_set_domain, ""),
        ("ds_select_dst", ds_select_dst, "ii"),
        ("ds_select_dst_limit", ds_select_dst_limit, "iii"),
        ("ds_select_routes", ds_select_routes, "ss"),
        ("ds_select_routes_limit", ds_select_routes_limit, "ssi"),
        ("ds_next_dst", ds_next_dst, ""),
        ("ds_set_dst", ds_set_dst, ""),
        ("ds_mark_dst", ds_mark_dst, ""),
        ("ds_mark_dst_state", ds_mark_dst_state, "s"),
        ("ds_is_from_lists", ds_is_from_lists, ""),
        ("ds_is_from_list", ds_is_from_list, "i"),
        ("ds_is_from_list_mode", ds_is_from_list_mode, "ii"),
        ("ds_is_from_list_uri", ds_is_from_list_uri, "iis"),
        ("ds_load_update", ds_load_update, ""),
        ("ds_load_unset", ds_load_unset, ""),
        ("ds_reload", ds_reload, ""),
        ("ds_list_exists", ds_list_exists, "i"),
        ("ds_is_active", ds_is_active, "i"),
        ("ds_is_active_uri", ds_is_active_uri, "is"),
    ]
    return [export(MODULE, name, func, kinds) for name, func, kinds in table]


# ---- native cfg functions (parameters may hold pseudo-variables) ------------------------------
def _text(ctx: MsgContext, value: str) -> str:
    return ctx.core.pv.format(value)(ctx) if "$" in value else value


def _num(ctx: MsgContext, value: str) -> int:
    text = _text(ctx, value).strip()
    try:
        return int(text, 0)
    except ValueError:
        log.error("dispatcher: %r is not a number", text)
        return -1


def _cfg_select(where: int) -> Callable[..., int]:
    def run(ctx: MsgContext, setid: str, alg: str, limit: str = "0") -> int:
        return sel.select(_svc(ctx), ctx, _num(ctx, setid), _num(ctx, alg), _num(ctx, limit),
                          where)
    return run


def _cfg_is_from_list(ctx: MsgContext, group: str = "-1", mode: str = "2", uri: str = "") -> int:
    return marks.is_from_list(_svc(ctx), ctx, _num(ctx, group), _num(ctx, mode), _text(ctx, uri))


CFG_FUNCTIONS: tuple[tuple[str, Callable[..., int], int, int], ...] = (
    ("ds_select_dst", _cfg_select(sel.TO_DST), 2, 3),
    ("ds_select_domain", _cfg_select(sel.TO_DOMAIN), 2, 3),
    ("ds_select", _cfg_select(sel.TO_XAVP), 2, 3),
    ("ds_select_routes", lambda ctx, rules, mode, limit="0": _select_routes(
        ctx, _text(ctx, rules), _text(ctx, mode), _num(ctx, limit)), 2, 3),
    ("ds_next_dst", ds_next_dst, 0, 0),
    ("ds_next_domain", ds_next_domain, 0, 0),
    ("ds_set_dst", ds_set_dst, 0, 0),
    ("ds_set_domain", ds_set_domain, 0, 0),
    ("ds_mark_dst", lambda ctx, state="i": ds_mark_dst_state(ctx, _text(ctx, state)), 0, 1),
    ("ds_mark_addr", lambda ctx, state, setid, uri: ds_mark_addr(
        ctx, _text(ctx, state), _num(ctx, setid), _text(ctx, uri)), 3, 3),
    ("ds_is_from_list", _cfg_is_from_list, 0, 3),
    ("ds_list_exists", lambda ctx, group: ds_list_exists(ctx, _num(ctx, group)), 1, 1),
    ("ds_list_exist", lambda ctx, group: ds_list_exists(ctx, _num(ctx, group)), 1, 1),
    ("ds_is_active", lambda ctx, group, uri="": marks.is_active(
        _svc(ctx), _num(ctx, group), _text(ctx, uri)), 1, 2),
    ("ds_load_update", ds_load_update, 0, 0),
    ("ds_load_unset", ds_load_unset, 0, 0),
    ("ds_reload", ds_reload, 0, 0),
)


# ---- hooks ---------------------------------------------------------------------------------
@hookimpl
def mod_register(core: Core) -> None:
    params.declare(core)
    for name, func, lo, hi in CFG_FUNCTIONS:
        core.add_cfg_function(CfgFunction(MODULE, name, func, lo, hi))


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    settings = params.read(core)
    svc = DsService(core, settings)
    svc.call_load.watch_expiry(svc.state.store)
    try:
        svc.reload(force=True)
    except (ListError, DbError) as exc:
        raise ModuleError(f"dispatcher: cannot load the destinations: {exc}") from None
    rpc.register(core, svc)
    if settings.ping_interval > 0:
        svc.pinger = Pinger(svc)
        svc.pinger.start()
    _state.svc = svc
