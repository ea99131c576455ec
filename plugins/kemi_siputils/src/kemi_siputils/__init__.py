"""siputils.so: SIP utilities: has_totag, is_request/is_reply, is_first_hop, R-URI parameters,
value checks (is_uri, is_numeric, is_e164 ...), URI comparison, options_reply and the
contact_param_* encoding. Functions return Kamailio's int: 1 true, negative false."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kemi_core.api import CfgFunction, Core, KemiExport, MsgContext, export, hookimpl
from kemi_siputils import checks, headers, uris

MODULE = "siputils"

#: KEMI exports (Kamailio 5.6's KSR.siputils.*): name, function, parameter letters.
EXPORTS: list[tuple[str, Callable[..., Any], str]] = [
    ("has_totag", checks.has_totag, ""),
    ("is_request", checks.is_request, ""),
    ("is_reply", checks.is_reply, ""),
    ("is_first_hop", checks.is_first_hop, ""),
    ("is_first_hop_mode", checks.is_first_hop_mode, "i"),
    ("is_uri", checks.is_uri, "s"),
    ("is_user", checks.is_user, "s"),
    ("uri_param", uris.uri_param, "s"),
    ("uri_param_value", uris.uri_param_value, "ss"),
    ("uri_param_any", uris.uri_param_any, "s"),
    ("uri_param_rm", uris.uri_param_rm, "s"),
    ("add_uri_param", uris.add_uri_param, "s"),
    ("is_tel_number", checks.is_tel_number, "s"),
    ("is_numeric", checks.is_numeric, "s"),
    ("is_alphanum", checks.is_alphanum, "s"),
    ("is_alphanumex", checks.is_alphanumex, "ss"),
    ("options_reply", headers.options_reply, ""),
    ("contact_param_encode", headers.contact_param_encode, "ss"),
    ("contact_param_decode", headers.contact_param_decode, "s"),
    ("contact_param_decode_ruri", headers.contact_param_decode_ruri, "s"),
    ("contact_param_rm", headers.contact_param_rm, "s"),
    ("hdr_date_check", headers.hdr_date_check, "i"),
    ("cmp_uri", uris.cmp_uri, "ss"),
    ("cmp_aor", uris.cmp_aor, "ss"),
    ("cmp_hdr_name", uris.cmp_hdr_name, "ss"),
    ("is_gruu", headers.is_gruu, ""),
    ("is_gruu_uri", headers.is_gruu_uri, "s"),
    ("is_supported", headers.is_supported, "s"),
    ("is_e164", checks.is_e164, "s"),
    ("is_uri_user_e164", checks.is_uri_user_e164, "s"),
]


def _dyn(fn: Callable[..., int]) -> Callable[..., int]:
    """A cfg function whose string parameters may hold variables ($rU ...): evaluated first."""
    def call(ctx: MsgContext, *args: Any) -> int:
        return fn(ctx, *(ctx.core.pv.format(a)(ctx) if isinstance(a, str) and "$" in a else a
                         for a in args))
    call.__doc__ = fn.__doc__
    return call


def _uri_param(ctx: MsgContext, name: str, value: str | None = None) -> int:
    """uri_param(name[, value]): the R-URI has parameter ``name`` (without a value, or with
    exactly ``value``)."""
    return uris.uri_param(ctx, name) if value is None else uris.uri_param_value(ctx, name, value)


def _is_first_hop(ctx: MsgContext, mode: int = 0) -> int:
    return checks.is_first_hop_mode(ctx, mode)


def _is_gruu(ctx: MsgContext, uri: str | None = None) -> int:
    return headers.is_gruu(ctx) if uri is None else headers.is_gruu_uri(ctx, uri)


def _output_var(fn: Callable[..., int]) -> Callable[..., int]:
    """Like _dyn for every parameter but the last, a variable name to write to."""
    def call(ctx: MsgContext, *args: str) -> int:
        *ins, out = args
        return fn(ctx, *(ctx.core.pv.format(a)(ctx) if "$" in a else a for a in ins), out)
    call.__doc__ = fn.__doc__
    return call


#: kamailio.cfg functions: name, function, min args, max args, int positions.
CFG: list[tuple[str, Callable[..., int], int, int, tuple[int, ...]]] = [
    ("has_totag", checks.has_totag, 0, 0, ()),
    ("is_request", checks.is_request, 0, 0, ()),
    ("is_reply", checks.is_reply, 0, 0, ()),
    ("is_first_hop", _is_first_hop, 0, 1, (0,)),
    ("is_uri", _dyn(checks.is_uri), 1, 1, ()),
    ("is_user", _dyn(checks.is_user), 1, 1, ()),
    ("uri_param", _dyn(_uri_param), 1, 2, ()),
    ("uri_param_any", _dyn(uris.uri_param_any), 1, 1, ()),
    ("uri_param_rm", _dyn(uris.uri_param_rm), 1, 1, ()),
    ("add_uri_param", _dyn(uris.add_uri_param), 1, 1, ()),
    ("get_uri_param", _output_var(uris.get_uri_param), 2, 2, ()),
    ("tel2sip", _output_var(uris.tel2sip), 3, 3, ()),
    ("is_e164", _dyn(checks.is_e164), 1, 1, ()),
    ("is_uri_user_e164", _dyn(checks.is_uri_user_e164), 1, 1, ()),
    ("is_tel_number", _dyn(checks.is_tel_number), 1, 1, ()),
    ("is_numeric", _dyn(checks.is_numeric), 1, 1, ()),
    ("is_alphanum", _dyn(checks.is_alphanum), 1, 1, ()),
    ("is_alphanumex", _dyn(checks.is_alphanumex), 2, 2, ()),
    ("cmp_uri", _dyn(uris.cmp_uri), 2, 2, ()),
    ("cmp_aor", _dyn(uris.cmp_aor), 2, 2, ()),
    ("cmp_hdr_name", _dyn(uris.cmp_hdr_name), 2, 2, ()),
    ("set_uri_user", _dyn(uris.set_uri_user), 2, 2, ()),
    ("set_uri_host", _dyn(uris.set_uri_host), 2, 2, ()),
    ("options_reply", headers.options_reply, 0, 0, ()),
    ("is_gruu", _dyn(_is_gruu), 0, 1, ()),
    ("is_supported", _dyn(headers.is_supported), 1, 1, ()),
    ("hdr_date_check", headers.hdr_date_check, 1, 1, (0,)),
    ("contact_param_encode", _dyn(headers.contact_param_encode), 2, 2, ()),
    ("contact_param_decode", _dyn(headers.contact_param_decode), 1, 1, ()),
    ("contact_param_decode_ruri", _dyn(headers.contact_param_decode_ruri), 1, 1, ()),
    ("contact_param_rm", _dyn(headers.contact_param_rm), 1, 1, ()),
]


def exports() -> list[KemiExport]:
    return [export(MODULE, name, fn, params) for name, fn, params in EXPORTS]


@hookimpl
def mod_register(core: Core) -> None:
    for name, default in (("options_accept", "*/*"), ("options_accept_encoding", ""),
                          ("options_accept_language", "en"), ("options_support", ""),
                          ("contact_flds_separator", "*"), ("rpid_prefix", ""),
                          ("rpid_suffix", ";party=calling;id-type=subscriber;screen=yes"),
                          ("rpid_avp", "$avp(s:rpid)")):
        core.declare_param(MODULE, name, str, default)
    core.declare_param(MODULE, "ring_timeout", int, 0, doc="accepted for compatibility")
    for name, fn, lo, hi, ints in CFG:
        core.add_cfg_function(CfgFunction(MODULE, name, fn, lo, hi, ints, fn.__doc__ or ""))


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    s = headers.options_settings
    s.accept = str(core.modparam(MODULE, "options_accept"))
    s.accept_encoding = str(core.modparam(MODULE, "options_accept_encoding"))
    s.accept_language = str(core.modparam(MODULE, "options_accept_language"))
    s.support = str(core.modparam(MODULE, "options_support"))
