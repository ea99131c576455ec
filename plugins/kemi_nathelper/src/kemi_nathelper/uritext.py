"""Spans in header and URI text: where the first Contact's URI and its host:port are.

nathelper rewrites Contact headers in place (host:port, an ``;alias`` or ``;received``
parameter), keeping every other byte as the UA wrote it, so it works on text spans rather than
on re-serialised parsed values.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

#: Kamailio's protocol numbers, as ``;alias=ip~port~proto`` carries them.
PROTO_NUMBERS = {"udp": 1, "tcp": 2, "tls": 3, "sctp": 4, "ws": 5, "wss": 6}
PROTO_NAMES = {n: p for p, n in PROTO_NUMBERS.items()}


def _unquoted(text: str) -> Iterator[tuple[int, str]]:
    """(index, character) of every character outside double quotes (escapes honoured)."""
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        else:
            yield i, ch
        i += 1


def first_element(value: str) -> tuple[int, int]:
    """Span of the first comma-separated element of a header value (quotes and <...> kept
    whole), leading and trailing blanks left out."""
    if '"' not in value:
        # the usual value: no quotes, and no '<' before the first comma (or no comma)
        end = value.find(",")
        if end < 0:
            end = len(value)
        elif "<" in value[:end]:
            return _first_element_scan(value)
        lead = value[:end].lstrip(" \t")
        start = end - len(lead)
        return start, start + len(lead.rstrip(" \t"))
    return _first_element_scan(value)


def _first_element_scan(value: str) -> tuple[int, int]:
    """first_element() character by character (quotes and <...> nesting)."""
    depth = 0
    end = len(value)
    for i, ch in _unquoted(value):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            end = i
            break
    start = 0
    while start < end and value[start] in " \t":
        start += 1
    while end > start and value[end - 1] in " \t":
        end -= 1
    return start, end


def uri_in_element(element: str) -> tuple[int, int, bool]:
    """(start, end, bracketed) of the URI in a name-addr or addr-spec element. A bare
    addr-spec ends at its first ``;`` (what follows are header parameters, RFC 3261 20)."""
    if '"' in element:
        lt = next((i for i, ch in _unquoted(element) if ch == "<"), -1)
    else:
        lt = element.find("<")
    if lt >= 0:
        gt = element.find(">", lt)
        return lt + 1, (gt if gt >= 0 else len(element)), True
    semi = element.find(";")
    return 0, (semi if semi >= 0 else len(element)), False


def hostport_in_uri(uri: str) -> tuple[int, int, int]:
    """(start, port start or -1, end) of host[:port] in a sip:/sips: URI text."""
    colon = uri.find(":")
    if colon < 0:
        raise ValueError(f"not a URI: {uri!r}")
    start = colon + 1
    stop = len(uri)
    at = uri.find("@", start)
    # a user part may hold ';' (RFC 3261 user-unreserved): only what follows '@' counts
    k = uri.find(";", start)
    if k > at:  # k >= 0 and (at < 0 or k > at)
        stop = k
    k = uri.find("?", start, stop)
    if k > at:
        stop = k
    if 0 <= at < stop:
        start = at + 1
    if uri.startswith("[", start):
        close = uri.find("]", start, stop)
        if close < 0:
            raise ValueError(f"bad IPv6 reference in {uri!r}")
        port_colon = close + 1 if uri.startswith(":", close + 1) else -1
    else:
        port_colon = uri.find(":", start, stop)
    return start, (port_colon + 1 if port_colon >= 0 else -1), stop


def host_of(hostport: str) -> str:
    """The host of ``host[:port]`` (brackets of an IPv6 reference removed)."""
    if hostport.startswith("["):
        return hostport[1:hostport.find("]")]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


def host_text(ip: str) -> str:
    """An address as it stands in a URI (IPv6 in brackets)."""
    return f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip


def uri_param_spans(uri: str, name: str) -> list[tuple[int, int]]:
    """Spans of every ``;name[=value]`` parameter of a URI (the leading ``;`` included)."""
    _, _, stop = hostport_in_uri(uri)
    end = uri.find("?", stop)
    end = len(uri) if end < 0 else end
    spans = []
    i = stop
    while i < end and uri[i] == ";":
        j = uri.find(";", i + 1, end)
        j = end if j < 0 else j
        pname = uri[i + 1:j].split("=", 1)[0].strip().lower()
        if pname == name.lower():
            spans.append((i, j))
        i = j
    return spans


def params_end(uri: str) -> int:
    """Where parameters end in a URI (before ``?headers``)."""
    q = uri.find("?", hostport_in_uri(uri)[2])
    return len(uri) if q < 0 else q


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True
