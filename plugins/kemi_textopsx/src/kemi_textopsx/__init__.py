"""textopsx.so: more message edits: msg_apply_changes, change_reply_status, remove_body,
keep_hf, fnmatch, and header iterators (hf_iterator_*).

kemi applies every edit to the message at once, so ``msg_apply_changes()`` has nothing left to
do and always succeeds; what follows in the script already sees the changes, as it does in
Kamailio after the call.
"""

from __future__ import annotations

import fnmatch as _fnmatch
import logging
import re
from collections.abc import Callable
from typing import Any

from kemi_core.api import (
    CfgFunction,
    Core,
    KemiExport,
    MsgContext,
    ReturnKind,
    export,
    hookimpl,
)

log = logging.getLogger("kemi.textopsx")

MODULE = "textopsx"
#: Headers keep_hf never removes (Kamailio's list).
KEPT = frozenset({"via", "v", "from", "f", "to", "t", "call-id", "i", "cseq", "content-length",
                  "l", "content-type", "c", "max-forwards", "contact", "m", "route",
                  "record-route"})
MAX_ITERATORS = 4
_ITERS = "textopsx_iterators"


def msg_apply_changes(ctx: MsgContext) -> int:
    """Apply the edits made so far to the message: kemi edits in place, so this is done
    already (1; -1 for a reply, as in Kamailio)."""
    return 1 if ctx.msg.is_request else -1


def change_reply_status(ctx: MsgContext, code: int, reason: str) -> int:
    """Change the status code and reason of the reply being processed (same class only, e.g.
    a 5xx into another 5xx; 3xx/6xx... as Kamailio)."""
    msg = ctx.msg
    if msg.is_request:
        log.error("change_reply_status: the current message is a request")
        return -1
    if not 100 <= code <= 699 or (code // 100 != msg.status // 100 and not
                                  (msg.status >= 300 and code >= 300)):
        log.error("change_reply_status: %d cannot replace %d", code, msg.status)
        return -1
    msg.set_status(code, reason)
    return 1


def change_reply_status_code(ctx: MsgContext, code: int) -> int:
    """Change only the status code of the reply being processed (same class)."""
    return change_reply_status(ctx, code, ctx.msg.reason)


def remove_body(ctx: MsgContext) -> int:
    """Remove the body (Content-Length becomes 0, Content-Type goes); -1 when there is none."""
    if not ctx.msg.body:
        return -1
    ctx.msg.set_body(b"")
    return 1


def _keep(ctx: MsgContext, rx: re.Pattern[str] | None) -> int:
    msg = ctx.msg
    names = {name for name, _ in msg.iter_headers()}
    for name in names:
        low = name.lower()
        if low in KEPT or (rx is not None and rx.search(name)):
            continue
        msg.remove_header(name)
    return 1


def keep_hf(ctx: MsgContext) -> int:
    """Remove every header but the ones routing needs (Via, From, To, Call-ID, CSeq,
    Content-Length, Content-Type, Max-Forwards, Contact, Route, Record-Route)."""
    return _keep(ctx, None)


def keep_hf_re(ctx: MsgContext, regexp: str) -> int:
    """keep_hf, also keeping the headers whose name matches ``regexp``."""
    try:
        rx = re.compile(regexp)
    except re.error as exc:
        log.error("keep_hf: bad regular expression %r: %s", regexp, exc)
        return -1
    return _keep(ctx, rx)


def fnmatch(ctx: MsgContext, value: str, pattern: str) -> int:
    """1 when ``value`` matches the shell-style ``pattern`` (``*``, ``?``, ``[...]``)."""
    return 1 if _fnmatch.fnmatchcase(value, pattern) else -1


def fnmatch_ex(ctx: MsgContext, value: str, pattern: str, flags: str) -> int:
    """fnmatch with ``flags``: ``i`` matches case-insensitively."""
    if "i" in flags:
        return fnmatch(ctx, value.lower(), pattern.lower())
    return fnmatch(ctx, value, pattern)


# ---- header iterators ---------------------------------------------------------------------
def _iters(ctx: MsgContext) -> dict[str, int]:
    return ctx.extra.setdefault(_ITERS, {})  # type: ignore[no-any-return]


def _headers(ctx: MsgContext) -> list[tuple[str, str]]:
    return list(ctx.msg.iter_headers())


def hf_iterator_start(ctx: MsgContext, iname: str) -> int:
    """Start the header iterator ``iname`` before the first header (up to 4 at a time)."""
    its = _iters(ctx)
    if iname not in its and len(its) >= MAX_ITERATORS:
        log.error("hf_iterator_start: no more than %d iterators", MAX_ITERATORS)
        return -1
    its[iname] = -1
    return 1


def hf_iterator_end(ctx: MsgContext, iname: str) -> int:
    """Close the header iterator ``iname``."""
    return 1 if _iters(ctx).pop(iname, None) is not None else -1


def hf_iterator_next(ctx: MsgContext, iname: str) -> int:
    """Move ``iname`` to the next header; -1 past the last one."""
    its = _iters(ctx)
    if iname not in its:
        return -1
    its[iname] += 1
    return 1 if its[iname] < len(_headers(ctx)) else -1


def hf_iterator_prev(ctx: MsgContext, iname: str) -> int:
    """Move ``iname`` to the previous header; -1 before the first one."""
    its = _iters(ctx)
    if iname not in its or its[iname] <= 0:
        return -1
    its[iname] -= 1
    return 1


def _current(ctx: MsgContext, iname: str) -> tuple[str, str] | None:
    pos = _iters(ctx).get(iname)
    headers = _headers(ctx)
    if pos is None or not 0 <= pos < len(headers):
        return None
    return headers[pos]


def hf_iterator_hname(ctx: MsgContext, iname: str) -> str | None:
    """Name of the header ``iname`` is on (None when it is on none)."""
    cur = _current(ctx, iname)
    return cur[0] if cur else None


def hf_iterator_hbody(ctx: MsgContext, iname: str) -> str | None:
    """Value of the header ``iname`` is on (None when it is on none)."""
    cur = _current(ctx, iname)
    return cur[1] if cur else None


EXPORTS: list[tuple[str, Callable[..., Any], str, ReturnKind]] = [
    ("msg_apply_changes", msg_apply_changes, "", ReturnKind.INT),
    ("change_reply_status", change_reply_status, "is", ReturnKind.INT),
    ("change_reply_status_code", change_reply_status_code, "i", ReturnKind.INT),
    ("remove_body", remove_body, "", ReturnKind.INT),
    ("keep_hf", keep_hf, "", ReturnKind.INT),
    ("keep_hf_re", keep_hf_re, "s", ReturnKind.INT),
    ("fnmatch", fnmatch, "ss", ReturnKind.INT),
    ("fnmatch_ex", fnmatch_ex, "sss", ReturnKind.INT),
    ("hf_iterator_start", hf_iterator_start, "s", ReturnKind.INT),
    ("hf_iterator_end", hf_iterator_end, "s", ReturnKind.INT),
    ("hf_iterator_next", hf_iterator_next, "s", ReturnKind.INT),
    ("hf_iterator_prev", hf_iterator_prev, "s", ReturnKind.INT),
    ("hf_iterator_hname", hf_iterator_hname, "s", ReturnKind.XVAL),
    ("hf_iterator_hbody", hf_iterator_hbody, "s", ReturnKind.XVAL),
]


def _dyn(fn: Callable[..., int]) -> Callable[..., int]:
    def call(ctx: MsgContext, *args: Any) -> int:
        return fn(ctx, *(ctx.core.pv.format(a)(ctx) if isinstance(a, str) and "$" in a else a
                         for a in args))
    call.__doc__ = fn.__doc__
    return call


def _fnmatch_cfg(ctx: MsgContext, value: str, pattern: str, flags: str = "") -> int:
    return fnmatch_ex(ctx, value, pattern, flags)


CFG: list[tuple[str, Callable[..., int], int, int, tuple[int, ...]]] = [
    ("msg_apply_changes", msg_apply_changes, 0, 0, ()),
    ("change_reply_status", _dyn(change_reply_status), 2, 2, (0,)),
    ("change_reply_status_code", change_reply_status_code, 1, 1, (0,)),
    ("remove_body", remove_body, 0, 0, ()),
    ("keep_hf", keep_hf_re, 1, 1, ()),  # Kamailio 5.6 wants the regexp in kamailio.cfg
    ("fnmatch", _dyn(_fnmatch_cfg), 2, 3, ()),
    ("hf_iterator_start", _dyn(hf_iterator_start), 1, 1, ()),
    ("hf_iterator_end", _dyn(hf_iterator_end), 1, 1, ()),
    ("hf_iterator_next", _dyn(hf_iterator_next), 1, 1, ()),
    ("hf_iterator_prev", _dyn(hf_iterator_prev), 1, 1, ()),
]


def _pv_hfitname(ctx: MsgContext, iname: str) -> Any:
    return hf_iterator_hname(ctx, iname)


def _pv_hfitbody(ctx: MsgContext, iname: str) -> Any:
    return hf_iterator_hbody(ctx, iname)


@hookimpl
def mod_register(core: Core) -> None:

    for name, fn, lo, hi, ints in CFG:
        core.add_cfg_function(CfgFunction(MODULE, name, fn, lo, hi, ints, fn.__doc__ or ""))
    core.pv.register("hfitname", _pv_hfitname, takes_arg=True,
                doc="$hfitname(iname): name of the header the iterator is on")
    core.pv.register("hfitbody", _pv_hfitbody, takes_arg=True,
                doc="$hfitbody(iname): value of the header the iterator is on")


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return [export(MODULE, name, fn, params, ret) for name, fn, params, ret in EXPORTS]
