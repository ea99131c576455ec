"""Header functions: presence tests, regex search/subst in header values, removal, adding."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from kemi_core.api import MsgContext
from kemi_core.sip import method_tester
from kemi_textops.rawmsg import RawMsg, canon, commit, iter_named, split_line
from kemi_textops.search import _re, _subst_of

log = logging.getLogger("kemi.textops")


def _pick(indexes: list[int], flags: str) -> list[int]:
    """Which of the matching header lines a/f/l flags select (``a`` when empty)."""
    flag = flags[:1].lower() or "a"
    if not indexes:
        return []
    return indexes[:1] if flag == "f" else indexes[-1:] if flag == "l" else indexes


# ---- presence --------------------------------------------------------------------------
def is_present_hf(ctx: MsgContext, hname: str) -> int:
    """The header (long or compact name) is in the message."""
    return 1 if ctx.msg.has_header(hname.strip()) else -1


def is_present_hf_re(ctx: MsgContext, ematch: str) -> int:
    """A header whose name (as written) matches ``ematch`` is in the message."""
    rx = _re(ematch)
    if rx is None:
        return -1
    return 1 if any(rx.search(name) for name, _v in ctx.msg.iter_headers()) else -1


def search_hf(ctx: MsgContext, hname: str, sre: str, flags: str) -> int:
    """Match ``sre`` in the value of header ``hname``: all (a), first (f) or last (l) line."""
    rx = _re(sre)
    if rx is None:
        return -1
    want = canon(hname)
    values = [v for n, v in ctx.msg.iter_headers() if canon(n) == want]
    chosen = _pick(list(range(len(values))), flags)
    return 1 if any(rx.search(values[i]) for i in chosen) else -1


def subst_hf(ctx: MsgContext, hname: str, subst: str, flags: str) -> int:
    """sed-like substitution in the value of header ``hname`` (a/f/l as for search_hf)."""
    sub = _subst_of(subst)
    if sub is None:
        return -1
    raw = RawMsg.of(ctx)
    lines = raw.lines()
    want = canon(hname)
    chosen = _pick([i for i, n, _v in iter_named(lines) if n == want], flags)
    changed = 0
    for i in chosen:
        name, value = split_line(lines[i])
        new, n = sub.apply(ctx, value)
        if n:
            lines[i] = f"{name}: {new}\r\n"
            changed += n
    if not changed:
        return -1
    raw.set_lines(lines)
    return 1 if commit(ctx, raw) else -1


# ---- removal ---------------------------------------------------------------------------
def remove_hf(ctx: MsgContext, hname: str) -> int:
    """Remove every header line of that name (compact forms too); > 0 when any was."""
    return 1 if ctx.msg.remove_header(hname.strip()) > 0 else -1


def _remove_where(ctx: MsgContext, keep_line) -> int:  # noqa: ANN001 - (idx, name, canon, value) -> bool
    """Remove the header lines ``keep_line`` rejects.

    When every line of a header name goes, the edit API does it; otherwise the text is
    rewritten (index- or value-based removal has no API equivalent).
    """
    raw = RawMsg.of(ctx)
    lines = raw.lines()
    doomed: list[int] = []
    by_name: dict[str, list[int]] = {}
    for i, line in enumerate(lines):
        name, value = split_line(line)
        by_name.setdefault(canon(name), []).append(i)
        if not keep_line(i, name, canon(name), value):
            doomed.append(i)
    if not doomed:
        return -1
    gone = set(doomed)
    if all(set(idx) <= gone or not (set(idx) & gone) for idx in by_name.values()):
        for cname, idx in by_name.items():
            if set(idx) <= gone:
                ctx.msg.remove_header(cname)
        return 1
    raw.set_lines([line for i, line in enumerate(lines) if i not in gone])
    return 1 if commit(ctx, raw) else -1


def remove_hf_re(ctx: MsgContext, ematch: str) -> int:
    """Remove headers whose name matches ``ematch``."""
    rx = _re(ematch)
    if rx is None:
        return -1
    return _remove_where(ctx, lambda _i, name, _c, _v: not rx.search(name))


def remove_hf_exp(ctx: MsgContext, ematch: str, eskip: str) -> int:
    """Remove headers whose name matches ``ematch`` but not ``eskip``."""
    rx, skip = _re(ematch), _re(eskip)
    if rx is None or skip is None:
        return -1
    return _remove_where(ctx, lambda _i, n, _c, _v: not rx.search(n) or bool(skip.search(n)))


def remove_hf_idx(ctx: MsgContext, hname: str, idx: int) -> int:
    """Remove the ``idx``-th line of header ``hname`` (0 first, -1 last)."""
    want = canon(hname)
    lines = RawMsg.of(ctx).lines()
    positions = [i for i, n, _v in iter_named(lines) if n == want]
    if not -len(positions) <= idx < len(positions):
        return -1
    target = positions[idx]
    return _remove_where(ctx, lambda i, _n, _c, _v: i != target)


def remove_hf_match(ctx: MsgContext, hname: str, op: str, expr: str) -> int:
    """Remove ``hname`` lines whose value is ``eq`` / ``ne`` / ``in`` (contains) / ``re`` expr."""
    want = canon(hname)
    op = op.lower()
    if op == "re":
        rx = _re(expr)
        if rx is None:
            return -1
        test = lambda v: bool(rx.search(v))  # noqa: E731
    elif op in ("eq", "ne", "in"):
        test = {"eq": lambda v: v == expr, "ne": lambda v: v != expr,
                "in": lambda v: expr in v}[op]
    else:
        log.error("textops: remove_hf_match: unknown operator %r", op)
        return -1
    return _remove_where(ctx, lambda _i, _n, c, v: c != want or not test(v))


# ---- adding ----------------------------------------------------------------------------
def _parse_hf_text(txt: str) -> list[tuple[str, str]] | None:
    """``"Name: value\\r\\n"`` (one or more lines) -> [(name, value)]; None when malformed."""
    out: list[tuple[str, str]] = []
    for line in re.split(r"\r?\n(?![ \t])", txt.strip("\r\n")):
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or not re.fullmatch(r"[!-9;-~]+", name.strip()):
            return None
        out.append((name.strip(), value.strip()))
    return out or None


def append_hf(ctx: MsgContext, txt: str, hdr: str = "") -> int:
    """Add header text after the last header, or after the last ``hdr`` header."""
    fields = _parse_hf_text(txt)
    if fields is None:
        log.error("textops: append_hf: not a header line: %r", txt)
        return -1
    if not hdr:
        for name, value in fields:
            ctx.msg.append_header(name, value)
        return 1
    if ctx.msg.header_count(hdr) > 1:  # the API anchors on the first line; Kamailio on the last
        return _add_at(ctx, fields, hdr, after=True)
    for name, value in fields:  # (each below the one before, as Kamailio adds them)
        if not ctx.msg.add_header_after(hdr, name, value, added=True):
            return -1
    return 1


def insert_hf(ctx: MsgContext, txt: str, hdr: str = "") -> int:
    """Add header text before the first header, or before the first ``hdr`` header."""
    fields = _parse_hf_text(txt)
    if fields is None:
        log.error("textops: insert_hf: not a header line: %r", txt)
        return -1
    if not hdr:
        for name, value in fields:  # (each below the one before: Kamailio's order)
            ctx.msg.insert_header(name, value)
        return 1
    for name, value in fields:
        if not ctx.msg.add_header_before(hdr, name, value, added=True):
            return -1
    return 1


def _add_at(ctx: MsgContext, fields: list[tuple[str, str]], hdr: str, after: bool) -> int:
    raw = RawMsg.of(ctx)
    lines = raw.lines()
    want = canon(hdr)
    positions = [i for i, n, _v in iter_named(lines) if n == want]
    if not positions:
        return -1
    at = positions[-1] + 1 if after else positions[0]
    lines[at:at] = [f"{n}: {v}\r\n" for n, v in fields]
    raw.set_lines(lines)
    return 1 if commit(ctx, raw) else -1


def append_urihf(ctx: MsgContext, prefix: str, suffix: str) -> int:
    """Add the header ``prefix + original R-URI + suffix``."""
    if not ctx.msg.is_request:
        return -1
    return append_hf(ctx, prefix + (ctx.orig_ruri or ctx.msg.ruri) + suffix)


def append_to_reply(ctx: MsgContext, txt: str) -> int:
    """Queue header text for the next locally generated reply (sl/tm read
    ``ctx.extra["reply_headers"]``, a list of ``"Name: value\\r\\n"`` strings)."""
    fields = _parse_hf_text(txt)
    if fields is None:
        log.error("textops: append_to_reply: not a header line: %r", txt)
        return -1
    queue = ctx.extra.setdefault("reply_headers", [])
    queue.extend(f"{n}: {v}\r\n" for n, v in fields)
    return 1


def _date_value() -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())


def append_time(ctx: MsgContext) -> int:
    """Add a ``Date`` header to the reply this request will get."""
    return append_to_reply(ctx, f"Date: {_date_value()}\r\n")


def append_time_to_request(ctx: MsgContext) -> int:
    """Add a ``Date`` header to the message itself."""
    ctx.msg.append_header("Date", _date_value())
    return 1


# ---- method and privacy ----------------------------------------------------------------
#: is_method's argument -> the methods it names (upper case, stripped); a script passes a few
#: fixed texts, so the split is made once per text (bounded all the same)
_METHOD_SETS: dict[str, frozenset[str]] = {}
_METHOD_SETS_MAX = 256


def is_method(ctx: MsgContext, name: str) -> int:
    """The method (CSeq method for replies) is ``name`` or one of ``a|b|c``."""
    names = _METHOD_SETS.get(name)
    if names is None:
        names = frozenset(m.strip().upper() for m in name.split("|"))
        if len(_METHOD_SETS) >= _METHOD_SETS_MAX:
            _METHOD_SETS.clear()
        _METHOD_SETS[name] = names
    return 1 if ctx.msg.method.upper() in names else -1


#: is_method as the native cfg calls it: compiled for a name already split and a request's
#: method without lower case (kemi_core.sip.method_tester), is_method above for the rest
is_method_cfg: Callable[[MsgContext, str], int] = (
    is_method if method_tester is None else method_tester((_METHOD_SETS, is_method)))


def is_privacy(ctx: MsgContext, privacy: str) -> int:
    """The Privacy header lists ``privacy`` (id, header, session, user, none, critical ...)."""
    want = privacy.strip().lower()
    for value in ctx.msg.headers("Privacy"):
        if want in (p.strip().lower() for p in value.split(";")):
            return 1
    return -1

