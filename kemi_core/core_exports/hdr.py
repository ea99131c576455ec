"""KSR.hdr.*: add, remove and read header fields. Values to add are whole header lines,
``"X-Name: value\\r\\n"``, as in Kamailio."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core.core_exports.log import script_log
from kemi_core.kemi.exports import KemiExport, ReturnKind, export
from kemi_core.pv._util import header_lines
from kemi_core.sip.headers import TOKEN_CHARS

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

NULL_TEXT = "<<null>>"


def parse_header_lines(hdrval: str) -> list[tuple[str, str]] | None:
    """``"A: 1\\r\\nB: 2\\r\\n"`` -> [("A", "1"), ("B", "2")]; folded lines are joined.
    None when any line is not ``token ":" value``."""
    text = hdrval.replace("\r\n", "\n")
    lines: list[str] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line[0] in " \t" and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    out: list[tuple[str, str]] = []
    for line in lines:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not name or not TOKEN_CHARS.issuperset(name):
            return None
        out.append((name, value.strip()))
    return out or None


def _parsed(what: str, hdrval: str) -> list[tuple[str, str]] | None:
    hdrs = parse_header_lines(hdrval)
    if hdrs is None:
        script_log.error("hdr.%s: not a header line: %r", what, hdrval)
    return hdrs


def append(ctx: MsgContext, hdrval: str) -> int:
    """Add the header line(s) after the last header."""
    hdrs = _parsed("append", hdrval)
    if hdrs is None:
        return -1
    for name, value in hdrs:
        ctx.msg.append_header(name, value)
    return 1


def insert(ctx: MsgContext, hdrval: str) -> int:
    """Add the header line(s) before the first header."""
    hdrs = _parsed("insert", hdrval)
    if hdrs is None:
        return -1
    for name, value in hdrs:
        ctx.msg.insert_header(name, value)
    return 1


def append_after(ctx: MsgContext, hdrval: str, hdrname: str) -> int:
    """Add the header line(s) after the first ``hdrname`` header (at the end when absent)."""
    hdrs = _parsed("append_after", hdrval)
    if hdrs is None:
        return -1
    for name, value in hdrs:  # (each below the one before, as Kamailio adds them)
        if not ctx.msg.add_header_after(hdrname, name, value, added=True):
            ctx.msg.append_header(name, value)
    return 1


def insert_before(ctx: MsgContext, hdrval: str, hdrname: str) -> int:
    """Add the header line(s) before the first ``hdrname`` header (first when absent)."""
    hdrs = _parsed("insert_before", hdrval)
    if hdrs is None:
        return -1
    for name, value in hdrs:
        if not ctx.msg.add_header_before(hdrname, name, value, added=True):
            ctx.msg.insert_header(name, value)
    return 1


def remove(ctx: MsgContext, hdrval: str) -> int:
    """Remove every header called ``hdrval``."""
    name = hdrval.strip()
    if not name:
        return -1
    ctx.msg.remove_header(name)
    return 1


def rmappend(ctx: MsgContext, hrm: str, hadd: str) -> int:
    """Remove the headers called ``hrm``, then append the line(s) ``hadd``."""
    if _parsed("rmappend", hadd) is None or remove(ctx, hrm) < 0:
        return -1
    return append(ctx, hadd)


def rminsert(ctx: MsgContext, hrm: str, hadd: str) -> int:
    """Remove the headers called ``hrm``, then insert the line(s) ``hadd`` first."""
    if _parsed("rminsert", hadd) is None or remove(ctx, hrm) < 0:
        return -1
    return insert(ctx, hadd)


def is_present(ctx: MsgContext, hdrval: str) -> int:
    """1 when a header called ``hdrval`` exists, -1 otherwise."""
    return 1 if ctx.msg.has_header(hdrval.strip()) else -1


def append_to_reply(ctx: MsgContext, hdrval: str) -> int:
    """Add header line(s) to the reply this server will send for the request
    (kept in ``ctx.extra["reply_headers"]`` as (name, value) pairs)."""
    hdrs = _parsed("append_to_reply", hdrval)
    if hdrs is None:
        return -1
    ctx.extra.setdefault("reply_headers", []).extend(hdrs)
    return 1


def get(ctx: MsgContext, hname: str) -> str | None:
    """Body of the first header called ``hname`` (None when absent)."""
    return ctx.msg.header(hname)


def gete(ctx: MsgContext, hname: str) -> str:
    """Like get, but "" when absent."""
    value = ctx.msg.header(hname)
    return "" if value is None else value


def getw(ctx: MsgContext, hname: str) -> str:
    """Like get, but "<<null>>" when absent."""
    value = ctx.msg.header(hname)
    return NULL_TEXT if value is None else value


def get_idx(ctx: MsgContext, hname: str, idx: int) -> str | None:
    """Body of the idx-th header called ``hname`` (negative counts from the last)."""
    lines = header_lines(ctx.msg, hname)
    try:
        return lines[idx]
    except IndexError:
        return None


def gete_idx(ctx: MsgContext, hname: str, idx: int) -> str:
    """Like get_idx, but "" when absent."""
    value = get_idx(ctx, hname, idx)
    return "" if value is None else value


def getw_idx(ctx: MsgContext, hname: str, idx: int) -> str:
    """Like get_idx, but "<<null>>" when absent."""
    value = get_idx(ctx, hname, idx)
    return NULL_TEXT if value is None else value


def exports() -> list[KemiExport]:
    i, x = ReturnKind.INT, ReturnKind.XVAL
    return [
        export("hdr", "append", append, "s", i),
        export("hdr", "insert", insert, "s", i),
        export("hdr", "append_after", append_after, "ss", i),
        export("hdr", "insert_before", insert_before, "ss", i),
        export("hdr", "remove", remove, "s", i),
        export("hdr", "rmappend", rmappend, "ss", i),
        export("hdr", "rminsert", rminsert, "ss", i),
        export("hdr", "is_present", is_present, "s", i),
        export("hdr", "append_to_reply", append_to_reply, "s", i),
        export("hdr", "get", get, "s", x),
        export("hdr", "gete", gete, "s", x),
        export("hdr", "getw", getw, "s", x),
        export("hdr", "get_idx", get_idx, "si", x),
        export("hdr", "gete_idx", gete_idx, "si", x),
        export("hdr", "getw_idx", getw_idx, "si", x),
    ]
