"""SIP messages as tests write them: the natural text made wire-exact, and the replies a
downstream UAS sends to a request it received."""

from __future__ import annotations

import hashlib
import re
import textwrap
from collections.abc import Iterable, Mapping

from kemi_core.sip import SipMsg, build_reply

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_BARE_LF = re.compile(rb"(?<!\r)\n")

#: What ``headers=`` may be: a mapping, (name, value) pairs, or "Name: value" lines.
HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[str] | None


def wire_bytes(text: str | bytes) -> bytes:
    """``text`` as it goes on the wire: common indentation and leading blank lines removed (str),
    bare LF line ends made CRLF, the blank line after the headers added when missing, and the
    Content-Length set from the body (added when missing, corrected when wrong)."""
    if isinstance(text, str):
        data = textwrap.dedent(text).lstrip("\r\n").encode("utf-8")
    else:
        data = bytes(text).lstrip(b"\r\n")
    blank = _BLANK_LINE.search(data)
    if blank is None:
        head, body = data.rstrip(b"\r\n"), b""
    else:
        head, body = data[: blank.start()], _BARE_LF.sub(b"\r\n", data[blank.end():])
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    out: list[bytes] = []
    length = b"Content-Length: %d" % len(body)
    seen = False
    for line in lines:
        name, colon, _ = line.partition(b":")
        if colon and line[:1] not in (b" ", b"\t") and name.strip().lower() in (b"content-length", b"l"):
            if not seen:
                out.append(length)
                seen = True
            continue
        out.append(line)
    if not seen:
        out.append(length)
    return b"\r\n".join(out) + b"\r\n\r\n" + body


def header_pairs(headers: HeadersArg) -> list[tuple[str, str]]:
    """``headers=`` of the test API as (name, value) pairs."""
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    pairs: list[tuple[str, str]] = []
    for item in headers:
        if isinstance(item, str):
            name, colon, value = item.partition(":")
            if not colon:
                raise ValueError(f"header line without a colon: {item!r}")
            pairs.append((name.strip(), value.strip()))
        else:
            name, value = item
            pairs.append((str(name), str(value)))
    return pairs


def uas_tag(request: SipMsg) -> str:
    """The To-tag a downstream UAS gives every reply to ``request`` (one per transaction)."""
    key = f"{request.via.branch}|{request.call_id}|{request.cseq.number}"
    return hashlib.blake2s(key.encode(), digest_size=6).hexdigest()


def downstream_reply(request: SipMsg, status: int, reason: str = "",
                     headers: HeadersArg = None, body: bytes | str = b"",
                     contact: str | None = None) -> bytes:
    """The reply a UAS that received ``request`` sends back (RFC 3261 8.2.6, 12.1.1): every Via in
    order, From, To with the UAS's tag, Call-ID, CSeq; for 101-299 to a dialog-creating request
    the Record-Route lines and a Contact (``contact``, unless ``headers`` have one); then
    ``headers`` and the body (Content-Type application/sdp for an SDP body unless given)."""
    extra = header_pairs(headers)
    names = {name.lower() for name, _ in extra}
    if isinstance(body, str):
        body = _BARE_LF.sub(b"\r\n", body.encode("utf-8"))
    dialog = 100 < status < 300 and request.method in ("INVITE", "SUBSCRIBE", "REFER")
    lead: list[tuple[str, str]] = []
    if dialog:
        lead += [("Record-Route", value) for value in request.headers("record-route")]
        if "contact" not in names and "m" not in names and contact:
            lead.append(("Contact", contact))
    content_type = None
    if body and "content-type" not in names and "c" not in names:
        content_type = "application/sdp" if body.startswith(b"v=0") else "application/octet-stream"
    return build_reply(request, status, reason or default_reason(status), to_tag=uas_tag(request),
                       headers=lead + extra, body=body, content_type=content_type)


_REASONS = {100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
            183: "Session Progress", 200: "OK", 202: "Accepted", 301: "Moved Permanently",
            302: "Moved Temporarily", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 407: "Proxy Authentication Required", 408: "Request Timeout",
            480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
            483: "Too Many Hops", 486: "Busy Here", 487: "Request Terminated",
            488: "Not Acceptable Here", 500: "Server Internal Error", 503: "Service Unavailable",
            600: "Busy Everywhere", 603: "Decline"}


_CLASSES = {1: "Provisional", 2: "Success", 3: "Redirection", 4: "Request Failure",
            5: "Server Failure", 6: "Global Failure"}


def default_reason(status: int) -> str:
    """RFC 3261's reason phrase for ``status`` (its class's name for codes it does not name)."""
    return _REASONS.get(status) or _CLASSES.get(status // 100, "Unknown")
