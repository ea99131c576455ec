"""kemi's textops module (``loadmodule "textops.so"``, ``KSR.textops.*``).

Regular-expression search/replace, sed-like substitutions, header and body edits, string
tests. The KEMI names, parameter kinds and int returns are Kamailio 5.6's. Functions Kamailio
offers only to kamailio.cfg (append_hf, insert_hf, append_to_reply, is_method, ...) are native cfg
functions here too; KEMI scripts use ``KSR.hdr.*`` / ``KSR.is_method`` for those, as in Kamailio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kemi_core.api import CfgFunction, Core, KemiExport, MsgContext, export, hookimpl
from kemi_textops import body, headers, search, strings
from kemi_textops.pvbridge import expand

MODULE = "textops"

#: (name, function, parameter letters) -- every one returns Kamailio's int convention.
EXPORTS: list[tuple[str, Callable[..., int], str]] = [
    ("search", search.search, "s"),
    ("search_body", search.search_body, "s"),
    ("search_hf", headers.search_hf, "sss"),
    ("search_append", search.search_append, "ss"),
    ("search_append_body", search.search_append_body, "ss"),
    ("search_str", search.search_str, "ss"),
    ("is_present_hf", headers.is_present_hf, "s"),
    ("is_present_hf_re", headers.is_present_hf_re, "s"),
    ("subst", search.subst, "s"),
    ("subst_uri", search.subst_uri, "s"),
    ("subst_user", search.subst_user, "s"),
    ("subst_body", search.subst_body, "s"),
    ("subst_hf", headers.subst_hf, "sss"),
    ("remove_hf", headers.remove_hf, "s"),
    ("remove_hf_re", headers.remove_hf_re, "s"),
    ("remove_hf_idx", headers.remove_hf_idx, "si"),
    ("remove_hf_exp", headers.remove_hf_exp, "ss"),
    ("remove_hf_match", headers.remove_hf_match, "sss"),
    ("replace", search.replace, "ss"),
    ("replace_str", search.replace_str, "sss"),
    ("replace_all", search.replace_all, "ss"),
    ("replace_body", search.replace_body, "ss"),
    ("replace_body_str", search.replace_body_str, "sss"),
    ("replace_hdrs", search.replace_hdrs, "ss"),
    ("replace_hdrs_str", search.replace_hdrs_str, "sss"),
    ("replace_body_all", search.replace_body_all, "ss"),
    ("replace_body_atonce", search.replace_body_atonce, "ss"),
    ("set_body", body.set_body, "ss"),
    ("set_reply_body", body.set_reply_body, "ss"),
    ("has_body", body.has_body, ""),
    ("has_body_type", body.has_body_type, "s"),
    ("filter_body", body.filter_body, "s"),
    ("is_privacy", headers.is_privacy, "s"),
    ("in_list", strings.in_list, "sss"),
    ("in_list_prefix", strings.in_list_prefix, "sss"),
    ("cmp_str", strings.cmp_str, "ss"),
    ("cmp_istr", strings.cmp_istr, "ss"),
    ("starts_with", strings.starts_with, "ss"),
    ("ends_with", strings.ends_with, "ss"),
    ("str_find", strings.str_find, "ss"),
    ("str_ifind", strings.str_ifind, "ss"),
    ("is_audio_on_hold", body.is_audio_on_hold, ""),
    ("set_body_multipart_mode", body.set_body_multipart_mode, ""),
    ("set_body_multipart_boundary", body.set_body_multipart_boundary, "s"),
    ("set_body_multipart_content", body.set_body_multipart_content, "ss"),
    ("set_body_multipart", body.set_body_multipart, "sss"),
    ("append_body_part", body.append_body_part, "ss"),
    ("append_body_part_cd", body.append_body_part_cd, "sss"),
    ("append_body_part_hex", body.append_body_part_hex, "ss"),
    ("append_body_part_hex_cd", body.append_body_part_hex_cd, "sss"),
    ("remove_body_part", body.remove_body_part, "s"),
    ("get_body_part", body.get_body_part, "ss"),
    ("get_body_part_raw", body.get_body_part_raw, "ss"),
    ("regex_substring", search.regex_substring, "ssiis"),
]

#: Native kamailio.cfg functions: (name, function, min args, max args, positions whose
#: pseudo-variables are evaluated per call, int positions). Regex and variable-name
#: parameters are never evaluated, as in Kamailio's fixups.
CFG: list[tuple[str, Callable[..., int], int, int, tuple[int, ...], tuple[int, ...]]] = [
    ("search", search.search, 1, 1, (), ()),
    ("search_body", search.search_body, 1, 1, (), ()),
    ("search_hf", headers.search_hf, 2, 3, (), ()),
    ("search_append", search.search_append, 2, 2, (1,), ()),
    ("search_append_body", search.search_append_body, 2, 2, (1,), ()),
    ("search_str", search.search_str, 2, 2, (0, 1), ()),
    ("is_present_hf", headers.is_present_hf, 1, 1, (), ()),
    ("is_present_hf_pv", headers.is_present_hf, 1, 1, (0,), ()),
    ("is_present_hf_re", headers.is_present_hf_re, 1, 1, (), ()),
    ("is_present_hf_re_pv", headers.is_present_hf_re, 1, 1, (0,), ()),
    ("subst", search.subst, 1, 1, (), ()),
    ("subst_uri", search.subst_uri, 1, 1, (), ()),
    ("subst_user", search.subst_user, 1, 1, (), ()),
    ("subst_body", search.subst_body, 1, 1, (), ()),
    ("subst_hf", headers.subst_hf, 2, 3, (), ()),
    ("remove_hf", headers.remove_hf, 1, 1, (), ()),
    ("remove_hf_pv", headers.remove_hf, 1, 1, (0,), ()),
    ("remove_hf_re", headers.remove_hf_re, 1, 1, (), ()),
    ("remove_hf_re_pv", headers.remove_hf_re, 1, 1, (0,), ()),
    ("remove_hf_exp", headers.remove_hf_exp, 2, 2, (), ()),
    ("remove_hf_exp_pv", headers.remove_hf_exp, 2, 2, (0, 1), ()),
    ("remove_hf_idx", headers.remove_hf_idx, 2, 2, (0,), (1,)),
    ("remove_hf_match", headers.remove_hf_match, 3, 3, (0, 2), ()),
    ("replace", search.replace, 2, 2, (1,), ()),
    ("replace_str", search.replace_str, 3, 3, (0, 1), ()),
    ("replace_all", search.replace_all, 2, 2, (1,), ()),
    ("replace_body", search.replace_body, 2, 2, (1,), ()),
    ("replace_body_str", search.replace_body_str, 3, 3, (0, 1), ()),
    ("replace_hdrs", search.replace_hdrs, 2, 2, (1,), ()),
    ("replace_hdrs_str", search.replace_hdrs_str, 3, 3, (0, 1), ()),
    ("replace_body_all", search.replace_body_all, 2, 2, (1,), ()),
    ("replace_body_atonce", search.replace_body_atonce, 2, 2, (1,), ()),
    ("set_body", body.set_body, 2, 2, (0, 1), ()),
    ("set_reply_body", body.set_reply_body, 2, 2, (0, 1), ()),
    ("filter_body", body.filter_body, 1, 1, (), ()),
    ("is_privacy", headers.is_privacy, 1, 1, (), ()),
    ("in_list", strings.in_list, 3, 3, (0, 1), ()),
    ("in_list_prefix", strings.in_list_prefix, 3, 3, (0, 1), ()),
    ("cmp_str", strings.cmp_str, 2, 2, (0, 1), ()),
    ("cmp_istr", strings.cmp_istr, 2, 2, (0, 1), ()),
    ("starts_with", strings.starts_with, 2, 2, (0, 1), ()),
    ("ends_with", strings.ends_with, 2, 2, (0, 1), ()),
    ("str_find", strings.str_find, 2, 2, (0, 1), ()),
    ("str_ifind", strings.str_ifind, 2, 2, (0, 1), ()),
    ("is_audio_on_hold", body.is_audio_on_hold, 0, 0, (), ()),
    ("append_body_part_hex", body.append_body_part_hex, 2, 2, (0, 1), ()),
    ("remove_body_part", body.remove_body_part, 1, 1, (0,), ()),
    ("get_body_part", body.get_body_part, 2, 2, (0,), ()),
    ("get_body_part_raw", body.get_body_part_raw, 2, 2, (0,), ()),
    ("regex_substring", search.regex_substring, 5, 5, (0, 1), (2, 3)),
    ("append_hf", headers.append_hf, 1, 2, (0,), ()),
    ("insert_hf", headers.insert_hf, 1, 2, (0,), ()),
    ("append_urihf", headers.append_urihf, 2, 2, (), ()),
    ("append_to_reply", headers.append_to_reply, 1, 1, (0,), ()),
    ("append_time", headers.append_time, 0, 0, (), ()),
    ("append_time_to_request", headers.append_time_to_request, 0, 0, (), ()),
    ("is_method", headers.is_method, 1, 1, (), ()),
]


def _has_body_cfg(ctx: MsgContext, mime: str = "") -> int:
    return body.has_body_type(ctx, mime) if mime else body.has_body(ctx)


def _set_body_multipart_cfg(ctx: MsgContext, *args: str) -> int:
    args = tuple(expand(ctx, a) for a in args)
    if not args:
        return body.set_body_multipart_mode(ctx)
    if len(args) == 1:
        return body.set_body_multipart_boundary(ctx, args[0])
    if len(args) == 2:
        return body.set_body_multipart_content(ctx, args[0], args[1])
    return body.set_body_multipart(ctx, args[0], args[1], args[2])


def _append_body_part_cfg(ctx: MsgContext, txt: str, ct: str, cd: str = "") -> int:
    return body.append_body_part_cd(ctx, expand(ctx, txt), expand(ctx, ct), expand(ctx, cd))


def _with_pv(fn: Callable[..., int], positions: tuple[int, ...]) -> Callable[..., int]:
    if not positions:
        return fn

    def call(ctx: MsgContext, *args: Any) -> int:
        vals = [expand(ctx, a) if i in positions and isinstance(a, str) else a
                for i, a in enumerate(args)]
        return fn(ctx, *vals)

    call.__doc__ = fn.__doc__
    return call


def kemi_exports() -> list[KemiExport]:
    return [export(MODULE, name, fn, params) for name, fn, params in EXPORTS]


#: the compiled form a cfg function is called by (its doc stays the Python form's)
COMPILED_CFG: dict[Callable[..., int], Callable[..., int]] = {
    headers.is_method: headers.is_method_cfg}


def cfg_functions() -> list[CfgFunction]:
    out = [CfgFunction(MODULE, name, _with_pv(COMPILED_CFG.get(fn, fn), pv), lo, hi, ints,
                       fn.__doc__ or "")
           for name, fn, lo, hi, pv, ints in CFG]
    out.append(CfgFunction(MODULE, "has_body", _has_body_cfg, 0, 1, (), "has_body([mime])"))
    out.append(CfgFunction(MODULE, "set_body_multipart", _set_body_multipart_cfg, 0, 3))
    out.append(CfgFunction(MODULE, "append_body_part", _append_body_part_cfg, 2, 3))
    return out


@hookimpl
def mod_register(core: Core) -> None:
    for fn in cfg_functions():
        core.add_cfg_function(fn)


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return kemi_exports()
