"""What a server writes on the sender's top Via: ``;received`` (RFC 3261 18.2.1) and ``;rport=``
(RFC 3581), placed where Kamailio 5.6 places them (learnt by running it side by side).

* ``forwarded_via``: on a copy of a request sent on (stateless forward, tm branch). An
  existing ;rport or ;received keeps its place with the new value; a new ;received goes
  before the first parameter, a forced ;rport just before ;received.
* ``reply_via``: on a reply made here (sl, tm, the core's 400/500/503). An existing ;rport gets
  the value in its place; what is new (``;rport=`` after force_rport, then ``;received=``) goes
  after the last parameter, and an older ;received stays where it is.

Both take the Via's text (its ``raw``), its parsed host, the source address and whether the
script called force_rport, and answer the new text, or None when nothing changes. ;received is
written when the host is not the source IP, when the Via has ;rport, and when it already has a
;received (with another value, for a request sent on).
"""

from __future__ import annotations

from typing import NamedTuple


class _Param(NamedTuple):
    name: str  # lower-cased, stripped
    start: int  # the parameter's text: raw[start:end], between its ';' and the next
    end: int
    value: str | None  # stripped; None for a bare name


def _params(raw: str) -> tuple[int, list[_Param]]:
    """Where the parameters of a Via value start (its first ';', or its end) and each one."""
    first = raw.find(";")
    if first < 0:
        return len(raw), []
    out: list[_Param] = []
    at = first + 1
    n = len(raw)
    while at <= n:
        end = raw.find(";", at)
        if end < 0:
            end = n
        elif '"' in raw[at:end]:
            end = _quoted_end(raw, at)
        name, eq, value = raw[at:end].partition("=")
        out.append(_Param(name.strip().lower(), at, end, value.strip() if eq else None))
        at = end + 1
    return first, out


def _quoted_end(raw: str, at: int) -> int:
    """Where the parameter starting at ``at`` ends: the next ';' outside a quoted string."""
    quoted = False
    n = len(raw)
    while at < n:
        c = raw[at]
        if c == '"':
            quoted = not quoted
        elif c == "\\" and quoted:
            at += 1
        elif c == ";" and not quoted:
            return at
        at += 1
    return n


def _find(params: list[_Param], name: str) -> _Param | None:
    for p in params:
        if p.name == name:
            return p
    return None


def _unbracketed(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def forwarded_via(raw: str, host: str, src_ip: str, src_port: int, forced: bool) -> str | None:
    """The sender's Via on a request sent on (see the module's text); None: unchanged."""
    first, params = _params(raw)
    rport = _find(params, "rport")
    received = _find(params, "received")
    new_received = (_unbracketed(host) != src_ip or rport is not None
                    or (received is not None and received.value != src_ip))
    if not new_received and rport is None and not forced:
        return None
    ahead = f";rport={src_port}" if forced and rport is None else ""
    edits: list[tuple[int, int, str]] = []  # (start, end, text), applied last to first
    if received is not None:
        at = received.start - 1  # its ';'
        if new_received:
            edits.append((at, received.end, f"{ahead};received={src_ip}"))
        elif ahead:
            edits.append((at, at, ahead))
    elif new_received or ahead:
        edits.append((first, first, ahead + (f";received={src_ip}" if new_received else "")))
    if rport is not None:
        edits.append((rport.start, rport.end, f"rport={src_port}"))
    return _apply(raw, edits)


def reply_via(raw: str, host: str, src_ip: str, src_port: int, forced: bool) -> str | None:
    """The request's top Via as a reply made here carries it (see the module's text); None:
    unchanged. The usual Via of a UAC that asks for rport (one bare ``;rport``, nothing
    quoted: with ;rport, ;received always goes last) takes a few steps; ``reply_via_py`` is
    the rest."""
    if not forced and '"' not in raw:
        at = raw.find(";rport") + 6
        if at > 5 and (at == len(raw) or raw[at] == ";") and raw.lower().count("rport") == 1:
            return f"{raw[:at]}={src_port}{raw[at:]};received={src_ip}"
    return reply_via_py(raw, host, src_ip, src_port, forced)


def reply_via_py(raw: str, host: str, src_ip: str, src_port: int, forced: bool) -> str | None:
    """``reply_via`` for every Via (the reference its usual-Via steps are tested against)."""
    _first, params = _params(raw)
    rport = _find(params, "rport")
    new_received = (_unbracketed(host) != src_ip or rport is not None
                    or _find(params, "received") is not None)
    tail = (f";rport={src_port}" if forced and rport is None else "") + (
        f";received={src_ip}" if new_received else "")
    edits = [(len(raw), len(raw), tail)] if tail else []
    if rport is not None:
        edits.append((rport.start, rport.end, f"rport={src_port}"))
    return _apply(raw, edits) if edits else None


def _apply(raw: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, text in sorted(edits, reverse=True):
        raw = raw[:start] + text + raw[end:]
    return raw
