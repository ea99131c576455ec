"""rr: native cfg functions (arg counts, pseudo-variables in string args), modparams, API."""

from __future__ import annotations

import pytest

import kemi_rr
from kemi_core.api import ConfigError, MsgContext, RrApi, SipMsg, for_socket
from kemi_core.testing import context, offline_core, request


def test_cfg_functions_and_arg_counts() -> None:
    core, _ = offline_core(("rr", kemi_rr))
    want = {"loose_route": (0, 0), "loose_route_preloaded": (0, 0), "loose_route_mode": (1, 1),
            "record_route": (0, 1), "remove_record_route": (0, 0), "record_route_preset": (1, 2),
            "record_route_advertised_address": (1, 1), "add_rr_param": (1, 1),
            "check_route_param": (1, 1), "is_direction": (1, 1), "rr_next_hop_route": (0, 0)}
    for name, (lo, hi) in want.items():
        fn = core.cfg_functions[name]
        assert (fn.module, fn.min_args, fn.max_args) == ("rr", lo, hi)
    assert core.cfg_functions["loose_route_mode"].int_params == (0,)


def _sent(ctx: MsgContext) -> SipMsg:
    """The request as it is sent over UDP (our Record-Route on it)."""
    return for_socket(ctx, ctx.msg, "udp", None)


def test_cfg_string_args_expand_pseudo_variables() -> None:
    core, _ = offline_core(("rr", kemi_rr))
    ctx = context(core, request("INVITE", "sip:bob@10.0.0.2", 5070))
    ftag = ctx.msg.from_.tag
    assert core.cfg_functions["add_rr_param"].func(ctx, ";u=$rU") == 1
    assert core.cfg_functions["record_route"].func(ctx, ";m=$rm") == 1
    assert _sent(ctx).header("Record-Route") == f"<sip:127.0.0.1;lr;ftag={ftag};m=INVITE;u=bob>"
    ctx = context(core, request("INVITE", "sip:bob@10.0.0.2", 5070))
    assert core.cfg_functions["record_route_preset"].func(ctx, "$rd:5090") == 1
    assert _sent(ctx).header("Record-Route").startswith("<sip:10.0.0.2:5090;ftag=")
    ctx = context(core, request("INVITE", "sip:bob@10.0.0.2", 5070))
    assert core.cfg_functions["record_route"].func(ctx) == 1  # no argument


def test_custom_user_avp() -> None:
    core, _ = offline_core(("rr", kemi_rr), params={("rr", "add_username"): 1,
                                                    ("rr", "custom_user_avp"): "$avp(rru)"})
    ctx = context(core, request("INVITE", "sip:bob@10.0.0.2", 5070))
    ctx.avps["rru"] = ["mo"]
    kemi_rr.ki_record_route(ctx)
    assert _sent(ctx).header("Record-Route").startswith("<sip:mo@127.0.0.1;lr")


def test_modparams_declared_and_checked() -> None:
    core, _ = offline_core(("rr", kemi_rr), params={("rr", "enable_double_rr"): "0",
                                                    ("rr", "append_fromtag"): 0})
    assert core.modparam("rr", "enable_double_rr") == 0
    for name in ("enable_full_lr", "add_username", "force_send_socket", "ignore_sips",
                 "enable_socket_mismatch_warning", "sockname_mode", "custom_user_avp"):
        core.modparam("rr", name)
    with pytest.raises(ConfigError):
        core.set_param("rr", "no_such_param", 1)


def test_force_send_socket_single_entry() -> None:
    core, _ = offline_core(("rr", kemi_rr), params={("rr", "force_send_socket"): 1})
    raw = request("BYE", "sip:bob@10.0.0.2", 5070, extra="Route: <sip:127.0.0.1;lr>")
    ctx = context(core, raw.replace(b"To: <sip:bob@10.0.0.2>", b"To: <sip:bob@10.0.0.2>;tag=x"))
    assert kemi_rr.ki_loose_route(ctx) == 1
    assert ctx.send_socket == "udp:127.0.0.1:5060"


def test_service_api_for_other_modules() -> None:
    core, _ = offline_core(("rr", kemi_rr))
    api = core.require("rr", RrApi)
    raw = request("BYE", "sip:bob@10.0.0.2", 5070, extra="Route: <sip:127.0.0.1;lr;did=abc>")
    ctx = context(core, raw)
    api.loose_route(ctx)
    assert api.get_route_param(ctx, "did") == (True, "abc")
    assert api.get_route_param(ctx, "lr") == (True, None)
    assert api.get_route_param(ctx, "nope") == (False, None)
