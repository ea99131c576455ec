"""rr.so: Record-Route and loose routing (Kamailio's rr module).

record_route* insert our Record-Route entry on top of the request's headers (RFC 3261 16.6
step 4) with ;lr and ;ftag=<From tag>; loose_route processes the Route set of a request (16.4:
strict-router fix-up and removal of our own entries, 16.6 step 6 / 16.12: the next hop goes to
$du, or swaps with the R-URI when it is a strict router) and remembers the params of our own
entry for check_route_param, is_direction, $route_uri and $rdir.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from kemi_core.api import CfgFunction, Core, KemiExport, MsgContext, export, hookimpl
from kemi_rr.loose import (
    check_route_param,
    get_route_param,
    is_direction,
    loose_route,
    loose_route_preloaded,
    next_hop_route,
)
from kemi_rr.loose_fast import compiled_loose_route
from kemi_rr.pvs import register_pvs
from kemi_rr.record import (
    add_rr_param,
    record_route,
    record_route_advertised_address,
    record_route_preset,
    remove_record_route,
)
from kemi_rr.record_fast import compiled_record_route

MODULE = "rr"


def exports() -> list[KemiExport]:
    return [
        attrs.evolve(export(MODULE, "record_route", ki_record_route, ""),
                     func=_record_route_compiled),
        export(MODULE, "record_route_params", ki_record_route_params, "s"),
        export(MODULE, "record_route_preset_one", ki_record_route_preset_one, "s"),
        export(MODULE, "record_route_preset", ki_record_route_preset, "ss"),
        export(MODULE, "record_route_advertised_address", ki_record_route_advertised_address, "s"),
        attrs.evolve(export(MODULE, "loose_route", ki_loose_route, ""),
                     func=_loose_route_compiled),
        export(MODULE, "loose_route_preloaded", ki_loose_route_preloaded, ""),
        attrs.evolve(export(MODULE, "loose_route_mode", ki_loose_route_mode, "i"),
                     func=_loose_route_mode_compiled),
        export(MODULE, "remove_record_route", ki_remove_record_route, ""),
        export(MODULE, "add_rr_param", ki_add_rr_param, "s"),
        export(MODULE, "check_route_param", ki_check_route_param, "s"),
        export(MODULE, "is_direction", ki_is_direction, "s"),
        export(MODULE, "next_hop_route", ki_next_hop_route, ""),
    ]


# ---- hooks ----------------------------------------------------------------------------
@hookimpl
def mod_register(core: Core) -> None:
    for name, default, doc in (
        ("enable_full_lr", 0, ";lr=on instead of ;lr"),
        ("append_fromtag", 1, "add ;ftag=<From tag> (is_direction needs it)"),
        ("enable_double_rr", 1, "1: two entries when the socket changes, 2: always two"),
        ("add_username", 0, "put the R-URI user in the Record-Route URI"),
        ("enable_socket_mismatch_warning", 1, "accepted (warning about preset hosts)"),
        ("force_send_socket", 0, "loose_route forces the socket of our entry"),
        ("ignore_sips", 0, "always sip: in Record-Route, even for a sips: R-URI"),
        ("sockname_mode", 0, "accepted (socket names in Record-Route are not supported)"),
    ):
        core.declare_param(MODULE, name, int, default, doc=doc)
    core.declare_param(MODULE, "custom_user_avp", str, "", doc="PV with the user for add_username")
    for fn in cfg_functions():
        core.add_cfg_function(fn)
    register_pvs(core)
    core.provide(MODULE, RrApi())


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


# ---- KEMI functions -------------------------------------------------------------------
def ki_record_route(ctx: MsgContext) -> int:
    """Add our Record-Route entry on top of the request's headers."""
    return record_route(ctx)


#: ki_record_route as scripts call it: the usual initial request in one compiled call
#: (kemi_rr.record_fast), the function above for the rest
_record_route_compiled = compiled_record_route(ki_record_route)


def ki_record_route_params(ctx: MsgContext, params: str) -> int:
    """record_route() with ``;name=value`` URI params appended."""
    return record_route(ctx, params)


def ki_record_route_preset_one(ctx: MsgContext, addr: str) -> int:
    """Record-Route with ``addr`` (host[:port][;params], no scheme) as our address."""
    return record_route_preset(ctx, addr)


def ki_record_route_preset(ctx: MsgContext, addr: str, addr2: str) -> int:
    """Two Record-Route entries: ``addr`` for the outbound side, ``addr2`` for the inbound one."""
    return record_route_preset(ctx, addr, addr2)


def ki_record_route_advertised_address(ctx: MsgContext, addr: str) -> int:
    """Record-Route with this advertised address."""
    return record_route_advertised_address(ctx, addr)


def ki_loose_route(ctx: MsgContext) -> int:
    """Route by the Route set: 1 done, -1 no Route header, -3 a preloaded set ended at us."""
    return loose_route(ctx)


def ki_loose_route_preloaded(ctx: MsgContext) -> int:
    """loose_route(), true only for an initial request whose preloaded Route set ended at us."""
    return loose_route_preloaded(ctx)


def ki_loose_route_mode(ctx: MsgContext, mode: int) -> int:
    """loose_route(); mode 1 skips the R-URI==myself strict-routing test."""
    return loose_route(ctx, mode)


#: ki_loose_route and ki_loose_route_mode as scripts and the cfg call them: the usual in-dialog request (our one Route
#: entry) in one compiled call (kemi_rr.loose_fast), the functions above for the rest
_loose_route_compiled = compiled_loose_route(ki_loose_route, 1)
_loose_route_mode_compiled = compiled_loose_route(ki_loose_route_mode, 2)


def ki_remove_record_route(ctx: MsgContext) -> int:
    """Take back the Record-Route entries added to this request."""
    return remove_record_route(ctx)


def ki_add_rr_param(ctx: MsgContext, param: str) -> int:
    """Add ``;name=value`` to our Record-Route entry (before or after record_route)."""
    return add_rr_param(ctx, param)


def ki_check_route_param(ctx: MsgContext, regex: str) -> int:
    """After loose_route: do the params of our Route entry match the regex?"""
    return check_route_param(ctx, regex)


def ki_is_direction(ctx: MsgContext, dir: str) -> int:
    """After loose_route: "downstream" (caller to callee) or "upstream", by the ftag param."""
    return is_direction(ctx, dir)


def ki_next_hop_route(ctx: MsgContext) -> int:
    """After loose_route: is the next hop taken from a Route header?"""
    return next_hop_route(ctx)


# ---- API for other modules (Kamailio's rr_binds) ---------------------------------------
class RrApi:
    add_rr_param = staticmethod(add_rr_param)
    check_route_param = staticmethod(check_route_param)
    is_direction = staticmethod(is_direction)
    get_route_param = staticmethod(get_route_param)
    record_route = staticmethod(record_route)
    loose_route = staticmethod(loose_route)


# ---- native cfg functions ----------------------------------------------------------------
def _expand(ctx: MsgContext, text: str) -> str:
    """Pseudo-variables in a cfg string argument (Kamailio's fixup_spve)."""
    if "$" not in text:
        return text
    try:
        fmt = ctx.core.pv.format(text)
    except ValueError:
        return text
    return fmt(ctx)


def _pv(fn: Callable[..., int]) -> Callable[..., int]:
    def call(ctx: MsgContext, *args: Any) -> int:
        return fn(ctx, *(_expand(ctx, a) if isinstance(a, str) else a for a in args))
    call.__doc__ = fn.__doc__
    return call


def cfg_functions() -> list[CfgFunction]:
    return [
        CfgFunction(MODULE, "loose_route", _loose_route_compiled),
        CfgFunction(MODULE, "loose_route_preloaded", ki_loose_route_preloaded),
        CfgFunction(MODULE, "loose_route_mode", _loose_route_mode_compiled, 1, 1, (0,)),
        CfgFunction(MODULE, "record_route", _pv(record_route), 0, 1),
        CfgFunction(MODULE, "remove_record_route", ki_remove_record_route),
        CfgFunction(MODULE, "record_route_preset", _pv(record_route_preset), 1, 2),
        CfgFunction(MODULE, "record_route_advertised_address",
                    _pv(record_route_advertised_address), 1, 1),
        CfgFunction(MODULE, "add_rr_param", _pv(add_rr_param), 1, 1),
        CfgFunction(MODULE, "check_route_param", ki_check_route_param, 1, 1),
        CfgFunction(MODULE, "is_direction", ki_is_direction, 1, 1),
        CfgFunction(MODULE, "rr_next_hop_route", ki_next_hop_route),
    ]
