"""Body functions: presence and type tests, setting bodies, SDP hold detection, multipart."""

from __future__ import annotations

import binascii
import logging
import re

import attrs

from kemi_core.api import MsgContext
from kemi_textops.pvbridge import assign
from kemi_textops.rawmsg import ENC, ERRS, body_text, set_body_text

log = logging.getLogger("kemi.textops")

DEFAULT_BOUNDARY = "unique-boundary-1"
_BOUNDARY_RE = re.compile(r';\s*boundary\s*=\s*(?:"([^"]*)"|([^;\s]+))', re.IGNORECASE)


def _mime(ctype: str | None) -> str:
    return (ctype or "").split(";", 1)[0].strip().lower()


# ---- tests -----------------------------------------------------------------------------
def has_body(ctx: MsgContext) -> int:
    """The message carries a non-empty body."""
    return 1 if ctx.msg.body else -1


def has_body_type(ctx: MsgContext, ctype: str) -> int:
    """Non-empty body of MIME type ``ctype`` (or a multipart body holding such a part)."""
    if not ctx.msg.body:
        return -1
    want = _mime(ctype)
    have = _mime(ctx.msg.content_type) or "application/sdp"  # RFC 3261 default for SIP
    if have == want:
        return 1
    if have.startswith("multipart/") and any(_mime(p.ctype) == want for p in _parts(ctx) or ()):
        return 1
    return -1


def is_audio_on_hold(ctx: MsgContext) -> int:
    """An audio stream is on hold: 1 RFC 2543 (c=0.0.0.0), 2 RFC 3264 (sendonly/inactive)."""
    sdp = _sdp_text(ctx)
    if sdp is None:
        return -1
    session, *media = re.split(r"\r?\n(?=m=)", sdp)
    s_conn = re.search(r"^c=IN IP[46] (\S+)", session, re.MULTILINE)
    s_dir = re.search(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", session, re.MULTILINE)
    for block in media:
        if not block.startswith("m=audio"):
            continue
        conn = re.search(r"^c=IN IP[46] (\S+)", block, re.MULTILINE) or s_conn
        if conn and conn.group(1) in ("0.0.0.0", "::"):
            return 1
        direction = re.search(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", block,
                              re.MULTILINE) or s_dir
        if direction and direction.group(1) in ("sendonly", "inactive"):
            return 2
    return -1


def _sdp_text(ctx: MsgContext) -> str | None:
    if not ctx.msg.body:
        return None
    mime = _mime(ctx.msg.content_type) or "application/sdp"
    if mime == "application/sdp":
        return body_text(ctx)
    if mime.startswith("multipart/"):
        for part in _parts(ctx) or ():
            if _mime(part.ctype) == "application/sdp":
                return part.content
    return None


# ---- setting ---------------------------------------------------------------------------
def set_body(ctx: MsgContext, nb: str, nc: str) -> int:
    """Replace the body (Content-Type ``nc`` when given; Content-Length follows)."""
    set_body_text(ctx, nb, nc or None)
    return 1


def set_reply_body(ctx: MsgContext, nb: str, nc: str) -> int:
    """Body for the next locally generated reply: ``ctx.extra["reply_body"] =
    (body bytes, content type)``, read by sl/tm when they build it."""
    if not ctx.msg.is_request:
        return -1
    ctx.extra["reply_body"] = (nb.encode(ENC, ERRS), nc or "text/plain")
    return 1


# ---- multipart -------------------------------------------------------------------------
@attrs.define
class Part:
    headers: str  # header lines of the part, CRLF separated, no trailing CRLF
    content: str

    @property
    def ctype(self) -> str | None:
        m = re.search(r"^content-type\s*:\s*(.*)$", self.headers, re.IGNORECASE | re.MULTILINE)
        return m.group(1).strip() if m else None

    def raw(self, boundary: str) -> str:
        return f"--{boundary}\r\n{self.headers}\r\n\r\n{self.content}\r\n"


def _boundary(ctx: MsgContext) -> str | None:
    ctype = ctx.msg.content_type or ""
    if not _mime(ctype).startswith("multipart/"):
        return None
    m = _BOUNDARY_RE.search(ctype)
    return (m.group(1) or m.group(2)) if m else None


def _parts(ctx: MsgContext) -> list[Part] | None:
    """The parts of a multipart body; None when the body is not multipart."""
    boundary = _boundary(ctx)
    if boundary is None:
        return None
    body = body_text(ctx)
    delim = re.compile(r"(?:^|\r?\n)--" + re.escape(boundary) + r"(--)?[ \t]*(?:\r?\n|$)")
    parts: list[Part] = []
    marks = list(delim.finditer(body))
    for cur, nxt in zip(marks, marks[1:], strict=False):
        if cur.group(1):  # closing delimiter
            break
        chunk = body[cur.end(): nxt.start()]
        blank = re.search(r"\r?\n\r?\n", chunk)
        if chunk.startswith(("\r\n", "\n")):  # a part without headers
            head, content = "", chunk.split("\n", 1)[1]
        elif blank:
            head, content = chunk[: blank.start()], chunk[blank.end():]
        else:
            head, content = chunk, ""
        parts.append(Part(head, content))
    return parts


def _write_parts(ctx: MsgContext, parts: list[Part], boundary: str) -> None:
    body = "".join(p.raw(boundary) for p in parts) + f"--{boundary}--\r\n"
    set_body_text(ctx, body, f'multipart/mixed;boundary="{boundary}"')
    if not ctx.msg.has_header("Mime-Version"):
        ctx.msg.append_header("Mime-Version", "1.0")


def _as_parts(ctx: MsgContext) -> tuple[list[Part], str]:
    """Current parts and boundary, converting a single body into one part first."""
    parts = _parts(ctx)
    boundary = _boundary(ctx)
    if parts is not None and boundary is not None:
        return parts, boundary
    if not ctx.msg.body:
        return [], DEFAULT_BOUNDARY
    ctype = ctx.msg.content_type or "application/sdp"
    return [Part(f"Content-Type: {ctype}", body_text(ctx))], DEFAULT_BOUNDARY


def set_body_multipart_mode(ctx: MsgContext) -> int:
    """Turn the current body into a multipart/mixed body (boundary unique-boundary-1)."""
    return set_body_multipart_boundary(ctx, DEFAULT_BOUNDARY)


def set_body_multipart_boundary(ctx: MsgContext, boundary: str) -> int:
    """Turn the current body into a multipart/mixed body with ``boundary``."""
    if not boundary:
        return -1
    parts, _old = _as_parts(ctx)
    _write_parts(ctx, parts, boundary)
    return 1


def set_body_multipart_content(ctx: MsgContext, nbody: str, ctype: str) -> int:
    """Set a multipart body holding ``nbody`` of type ``ctype`` (default boundary)."""
    return set_body_multipart(ctx, nbody, ctype, DEFAULT_BOUNDARY)


def set_body_multipart(ctx: MsgContext, nbody: str, ctype: str, boundary: str) -> int:
    """Set a multipart body holding one part ``nbody`` of type ``ctype``."""
    if not boundary or not ctype:
        return -1
    _write_parts(ctx, [Part(f"Content-Type: {ctype}", nbody)], boundary)
    return 1


def _append_part(ctx: MsgContext, content: str, ct: str, cd: str) -> int:
    if not ct:
        return -1
    parts, boundary = _as_parts(ctx)
    headers = f"Content-Type: {ct}" + (f"\r\nContent-Disposition: {cd}" if cd else "")
    parts.append(Part(headers, content))
    _write_parts(ctx, parts, boundary)
    return 1


def append_body_part(ctx: MsgContext, txt: str, ct: str) -> int:
    """Append a body part (the body becomes multipart/mixed when it is not)."""
    return _append_part(ctx, txt, ct, "")


def append_body_part_cd(ctx: MsgContext, txt: str, ct: str, cd: str) -> int:
    """Append a body part with a Content-Disposition."""
    return _append_part(ctx, txt, ct, cd)


def _unhex(htxt: str) -> str | None:
    try:
        return binascii.unhexlify(re.sub(r"\s+", "", htxt)).decode(ENC, ERRS)
    except (binascii.Error, ValueError):
        log.error("textops: invalid hex body part %r", htxt[:40])
        return None


def append_body_part_hex(ctx: MsgContext, txt: str, ct: str) -> int:
    """Append a body part given in hex digits (spaces ignored)."""
    content = _unhex(txt)
    return -1 if content is None else _append_part(ctx, content, ct, "")


def append_body_part_hex_cd(ctx: MsgContext, htxt: str, ct: str, cd: str) -> int:
    """Append a hex-given body part with a Content-Disposition."""
    content = _unhex(htxt)
    return -1 if content is None else _append_part(ctx, content, ct, cd)


def _find(ctx: MsgContext, ctype: str) -> tuple[list[Part], int] | None:
    parts = _parts(ctx)
    want = _mime(ctype)
    for i, part in enumerate(parts or ()):
        if _mime(part.ctype) == want:
            return parts or [], i
    return None


def remove_body_part(ctx: MsgContext, content_type: str) -> int:
    """Remove the first part of type ``content_type`` from a multipart body."""
    found = _find(ctx, content_type)
    boundary = _boundary(ctx)
    if found is None or boundary is None:
        return -1
    parts, i = found
    del parts[i]
    _write_parts(ctx, parts, boundary)
    return 1


def get_body_part(ctx: MsgContext, ctype: str, pvname: str) -> int:
    """Store the content of the first part of type ``ctype`` in variable ``pvname``."""
    found = _find(ctx, ctype)
    if found is None:
        return -1
    parts, i = found
    return 1 if assign(ctx, pvname, parts[i].content) else -1


def get_body_part_raw(ctx: MsgContext, ctype: str, pvname: str) -> int:
    """Like get_body_part, with the boundary line and part headers."""
    found = _find(ctx, ctype)
    boundary = _boundary(ctx)
    if found is None or boundary is None:
        return -1
    parts, i = found
    return 1 if assign(ctx, pvname, parts[i].raw(boundary)) else -1


def filter_body(ctx: MsgContext, content_type: str) -> int:
    """Keep only the content of the first part of type ``content_type``."""
    found = _find(ctx, content_type)
    if found is None:
        return -1
    parts, i = found
    set_body_text(ctx, parts[i].content)
    return 1
