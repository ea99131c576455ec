"""Regular-expression search, replace and sed-like substitution over the message text.

Kamailio runs ``search`` over the whole buffer and the replace/subst family over everything
after the first line (headers and body); so do these. Text is the message as edited so far
(``to_bytes()``), not only as received. Body-only edits go through ``set_body``; edits that may
touch headers rewrite the text and re-parse it (see :mod:`kemi_textops.rawmsg`).
"""

from __future__ import annotations

import logging
import re

from kemi_core.api import MsgContext
from kemi_textops.posix_re import DEFAULT_FLAGS, compile_re
from kemi_textops.pvbridge import assign
from kemi_textops.rawmsg import ENC, ERRS, RawMsg, body_text, commit, set_body_text
from kemi_textops.subst import SubstError, parse_subst

log = logging.getLogger("kemi.textops")
_BLANK = re.compile(r"\n\r?\n")


def _re(pattern: str, flags: int = DEFAULT_FLAGS) -> re.Pattern[str] | None:
    try:
        return compile_re(pattern, flags)
    except re.error as exc:
        log.error("textops: bad regular expression %r: %s", pattern, exc)
        return None


def _literal(txt: str):  # noqa: ANN202 - re.sub callback that takes the text verbatim
    return lambda _m: txt


# ---- search ----------------------------------------------------------------------------
def search(ctx: MsgContext, sre: str) -> int:
    """Match ``sre`` anywhere in the message (first line, headers, body)."""
    rx = _re(sre)
    if rx is None:
        return -1
    return 1 if rx.search(ctx.msg.to_bytes().decode(ENC, ERRS)) else -1


def search_body(ctx: MsgContext, sre: str) -> int:
    """Match ``sre`` in the message body."""
    rx = _re(sre)
    return 1 if rx is not None and rx.search(body_text(ctx)) else -1


def search_str(ctx: MsgContext, text: str, sre: str) -> int:
    """Match ``sre`` in ``text``."""
    rx = _re(sre)
    return 1 if rx is not None and rx.search(text) else -1


def _rewrite_after_first_line(ctx: MsgContext, rx: re.Pattern[str], fn, count: int) -> int:  # noqa: ANN001
    raw = RawMsg.of(ctx)
    rest = raw.head + "\r\n" + raw.body
    new, n = rx.subn(fn, rest, count=count)
    if n == 0:
        return -1
    if new.startswith(("\r\n", "\n")):  # no header lines at all
        head, body = "", new.split("\n", 1)[1]
    else:
        # The first empty line ends the headers, as a parser would see the new text.
        blank = _BLANK.search(new)
        if blank is None:
            log.error("textops: edit removed the header/body separator; not applied")
            return -1
        head, body = new[: blank.start() + 1], new[blank.end():]
    raw.head, raw.body = head, body
    return 1 if commit(ctx, raw) else -1


def search_append(ctx: MsgContext, ematch: str, val: str) -> int:
    """Insert ``val`` after the first match of ``ematch`` (headers and body)."""
    rx = _re(ematch)
    if rx is None:
        return -1
    return _rewrite_after_first_line(ctx, rx, lambda m: m.group(0) + val, 1)


def search_append_body(ctx: MsgContext, ematch: str, val: str) -> int:
    """Insert ``val`` after the first match of ``ematch`` in the body."""
    rx = _re(ematch)
    if rx is None:
        return -1
    new, n = rx.subn(lambda m: m.group(0) + val, body_text(ctx), count=1)
    if n:
        set_body_text(ctx, new)
    return 1 if n else -1


# ---- replace ---------------------------------------------------------------------------
def replace(ctx: MsgContext, sre: str, sval: str) -> int:
    """Replace the first match of ``sre`` (headers and body) with ``sval``."""
    rx = _re(sre)
    return -1 if rx is None else _rewrite_after_first_line(ctx, rx, _literal(sval), 1)


def replace_all(ctx: MsgContext, sre: str, sval: str) -> int:
    """Replace every match of ``sre`` (headers and body) with ``sval``."""
    rx = _re(sre)
    return -1 if rx is None else _rewrite_after_first_line(ctx, rx, _literal(sval), 0)


def _replace_in_body(ctx: MsgContext, rx: re.Pattern[str] | None, sval: str, count: int) -> int:
    if rx is None:
        return -1
    new, n = rx.subn(_literal(sval), body_text(ctx), count=count)
    if n:
        set_body_text(ctx, new)
    return 1 if n else -1


def replace_body(ctx: MsgContext, sre: str, sval: str) -> int:
    """Replace the first match of ``sre`` in the body."""
    return _replace_in_body(ctx, _re(sre), sval, 1)


def replace_body_all(ctx: MsgContext, sre: str, sval: str) -> int:
    """Replace every match of ``sre`` in the body, matching line by line."""
    return _replace_in_body(ctx, _re(sre), sval, 0)


def replace_body_atonce(ctx: MsgContext, sre: str, sval: str) -> int:
    """Replace every match of ``sre`` in the body, matching over the whole body at once."""
    return _replace_in_body(ctx, _re(sre, re.IGNORECASE | re.DOTALL), sval, 0)


def _replace_head(ctx: MsgContext, fn, count: int) -> int:  # noqa: ANN001
    raw = RawMsg.of(ctx)
    new, n = fn(raw.head, count)
    if n == 0:
        return -1
    if new and not new.endswith("\n"):
        new += "\r\n"
    raw.head = new
    return 1 if commit(ctx, raw) else -1


def replace_hdrs(ctx: MsgContext, sre: str, sval: str) -> int:
    """Replace the first match of ``sre`` in the header block."""
    rx = _re(sre)
    if rx is None:
        return -1
    return _replace_head(ctx, lambda text, c: rx.subn(_literal(sval), text, count=c), 1)


def _str_mode(rmode: str) -> int | None:
    mode = rmode[:1].lower()
    return 1 if mode == "f" else 0 if mode == "a" else None


def _str_subn(text: str, mkey: str, rval: str, count: int) -> tuple[str, int]:
    n = text.count(mkey) if count == 0 else min(1, text.count(mkey))
    return (text.replace(mkey, rval, n), n) if n else (text, 0)


def replace_str(ctx: MsgContext, mkey: str, rval: str, rmode: str) -> int:
    """Plain-string replace over headers and body; ``rmode`` ``f`` first, ``a`` all."""
    count = _str_mode(rmode)
    if count is None or not mkey:
        return -1
    return _rewrite_after_first_line(ctx, re.compile(re.escape(mkey)), _literal(rval), count)


def replace_body_str(ctx: MsgContext, mkey: str, rval: str, rmode: str) -> int:
    """Plain-string replace over the body."""
    count = _str_mode(rmode)
    if count is None or not mkey:
        return -1
    new, n = _str_subn(body_text(ctx), mkey, rval, count)
    if n:
        set_body_text(ctx, new)
    return 1 if n else -1


def replace_hdrs_str(ctx: MsgContext, mkey: str, rval: str, rmode: str) -> int:
    """Plain-string replace over the header block."""
    count = _str_mode(rmode)
    if count is None or not mkey:
        return -1
    return _replace_head(ctx, lambda text, c: _str_subn(text, mkey, rval, c), count)


# ---- subst -----------------------------------------------------------------------------
def _subst_of(expr: str):  # noqa: ANN202
    try:
        return parse_subst(expr)
    except (SubstError, re.error) as exc:
        log.error("textops: bad subst expression %r: %s", expr, exc)
        return None


def subst(ctx: MsgContext, subst: str) -> int:
    """sed-like ``/re/repl/flags`` over headers and body."""
    sub = _subst_of(subst)
    if sub is None:
        return -1
    return _rewrite_after_first_line(ctx, sub.regex, sub.render_fn(ctx), 0 if sub.glob else 1)


def subst_body(ctx: MsgContext, subst: str) -> int:
    """sed-like substitution over the body."""
    sub = _subst_of(subst)
    if sub is None:
        return -1
    new, n = sub.apply(ctx, body_text(ctx))
    if n:
        set_body_text(ctx, new)
    return 1 if n else -1


def subst_uri(ctx: MsgContext, subst: str) -> int:
    """sed-like substitution over the Request-URI (requests only)."""
    sub = _subst_of(subst)
    if sub is None or not ctx.msg.is_request:
        return -1
    new, n = sub.apply(ctx, ctx.msg.ruri)
    if not n:
        return -1
    ctx.msg.set_ruri(new)
    return 1


def subst_user(ctx: MsgContext, subst: str) -> int:
    """sed-like substitution over the user part of the Request-URI."""
    sub = _subst_of(subst)
    if sub is None or not ctx.msg.is_request:
        return -1
    scheme, colon, rest = ctx.msg.ruri.partition(":")
    if not colon:
        return -1
    at, q = rest.find("@"), rest.find("?")
    if at >= 0 and (q < 0 or at < q):
        userinfo, hostpart = rest[:at], rest[at + 1:]
    else:
        userinfo, hostpart = "", rest
    user, pcolon, password = userinfo.partition(":")
    new_user, n = sub.apply(ctx, user)
    if not n:
        return -1
    info = new_user + (pcolon + password if new_user else "")
    ctx.msg.set_ruri(f"{scheme}:{info}@{hostpart}" if info else f"{scheme}:{hostpart}")
    return 1


# ---- regex_substring -------------------------------------------------------------------
def regex_substring(ctx: MsgContext, input: str, regex: str, mindex: int, nmatch: int,  # noqa: A002
                    dst: str) -> int:
    """Set ``dst`` to group ``mindex`` (0 = whole match) of the first match of ``regex``."""
    rx = _re(regex, 0)
    if rx is None or mindex < 0 or nmatch <= 0 or mindex >= nmatch:
        return -1
    m = rx.search(input)
    if m is None or mindex > rx.groups or m.group(mindex) is None:
        return -1
    return 1 if assign(ctx, dst, m.group(mindex)) else -1
