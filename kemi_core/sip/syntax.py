"""SIP lexical helpers: character classes, quoted strings, comma lists and ;params.

Everything raises only SipParseError. The splitting helpers take a fast str.split path when no
quote or angle bracket can hide a separator, and a character loop otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

from kemi_core.sip.errors import SipParseError

# Compact header forms (RFC 3261 7.3.3 and later RFCs) -> full lower-case names.
COMPACT_FORMS: dict[str, str] = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "y": "identity",
}

# Headers whose grammar is a comma-separated list (#rule), so headers() splits them.
LIST_HEADERS: frozenset[str] = frozenset(
    {
        "via", "contact", "route", "record-route", "path", "service-route",
        "require", "supported", "proxy-require", "unsupported", "allow", "allow-events",
        "accept", "accept-encoding", "accept-language", "content-encoding",
        "content-language", "in-reply-to", "alert-info", "call-info", "error-info",
        "warning", "p-associated-uri", "reason", "security-client", "security-server",
        "security-verify", "accept-contact", "reject-contact", "request-disposition",
    }
)  # fmt: skip

# Methods of RFC 3261 and its extensions: a set hit spares the token check.
METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
     "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"}
)  # fmt: skip

#: Kamailio's method bits ($rmid, the ``methods`` column of the location table); any other
#: method is METHOD_OTHER
METHOD_BITS = {
    "INVITE": 1, "CANCEL": 2, "ACK": 4, "BYE": 8, "INFO": 16, "REGISTER": 32,
    "SUBSCRIBE": 64, "NOTIFY": 128, "MESSAGE": 256, "OPTIONS": 512, "PRACK": 1024,
    "UPDATE": 2048, "REFER": 4096, "PUBLISH": 8192, "KDMQ": 16384, "GET": 32768,
    "POST": 65536, "PUT": 131072, "DELETE": 262144,
}
METHOD_OTHER = 524288


def method_bit(method: str) -> int:
    """Kamailio's bit for ``method`` (METHOD_OTHER for one it does not name)."""
    return METHOD_BITS.get(method.upper(), METHOD_OTHER)


TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")
IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")
# gen-value = token / host / quoted-string: token characters plus ':' '[' ']' (IPv6 hosts).
VALUE_CHARS = TOKEN_CHARS | frozenset(":[]")

# Regex pieces for the fast paths. Every repeat starts with its own delimiter and the classes
# exclude it, so these match in linear time without backtracking.
TOK = r"[A-Za-z0-9.!%*_+`'~\-]+"
VAL = r"[A-Za-z0-9.!%*_+`'~\-:\[\]]+"
PARAMS = rf"(?:;{TOK}(?:={VAL})?)*"
_PARAMS_FAST = re.compile(rf"{TOK}(?:={VAL})?{PARAMS}")


FOLD_RE = re.compile(r"[ \t]*\r?\n[ \t]*")
_KEYS: dict[str, str] = {}


def header_key(name: str) -> str:
    """Canonical lookup key of a header name: lower-case, compact form expanded."""
    key = _KEYS.get(name)
    if key is None:
        key = name.strip().lower()
        key = COMPACT_FORMS.get(key, key)
        if len(_KEYS) < 1024:
            _KEYS[name] = key
    return key


def line_value_py(line: str) -> str:
    """The value of a header line: after the colon, unfolded, without surrounding LWS.
    kemi_core/sip/_fast.c has the compiled form of this function, used when built."""
    v = line.partition(":")[2]
    if "\n" in v:
        v = FOLD_RE.sub(" ", v)
    return v.strip()


def single_index_py(keys: list[str], key: str) -> int:
    """Index of the only line whose key is ``key``; -1 when there is none, -2 when there
    are several. kemi_core/sip/_fast.c has the compiled form, used when built."""
    try:
        i = keys.index(key)
    except ValueError:
        return -1
    return i if keys.count(key) == 1 else -2


def index_head_py(text: str, cache: dict[str, str]) -> tuple[list[str], list[str]] | None:
    """(lines, keys) of a decoded head when every line ends in CR and every header line's name
    is in ``cache``, else None (bare-LF framing, folding, junk, a name never seen): the caller
    then takes the careful path. Each line keeps its CR; keys[0] is "" for the start line.
    kemi_core/sip/_fast.c has the compiled form of this function, used when built."""
    # Every line ends in CR: each LF follows a CR, and the last line ends in CR or LF.
    if text.count("\r\n") != text.count("\n") or text[-1:] not in ("\r", "\n"):
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    get = cache.get
    keys = [get(line.partition(":")[0]) for line in lines[1:]]
    # all() rather than "None in": comparing None with str is the slow path.
    if not lines or not all(keys):
        return None
    keys.insert(0, "")
    return lines, keys  # type: ignore[return-value]


def single_value_py(keys: list[str], lines: list[str], key: str) -> str | None:
    """line_value of the only line whose key is ``key``; None when there is none or several.
    kemi_core/sip/_fast.c has the compiled form, used when built."""
    try:
        i = keys.index(key)
    except ValueError:
        return None
    if keys.count(key) != 1:
        return None
    v = lines[i].partition(":")[2]  # (line_value_py inlined: one Python call, not two)
    if "\n" in v:
        v = FOLD_RE.sub(" ", v)
    return v.strip()


def params_trusted_py(text: str, into: dict[str, str | None]) -> dict[str, str | None]:
    """Add ';a=b;c' params (text starting with ';') already validated by a fast regex. A name
    given twice keeps its first value, as in parse_params. kemi_core/sip/_fast.c has the
    compiled form (params_trusted), used when built."""
    for item in text[1:].split(";"):
        name, eq, value = item.partition("=")
        into.setdefault(name.lower(), value if eq else None)
    return into


# KEMI_SIP_PURE=1 keeps the compiled helpers out (to compare both, or to debug the Python forms).
PURE_PYTHON = os.environ.get("KEMI_SIP_PURE", "") not in ("", "0")
try:
    if PURE_PYTHON:
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import (
        cached_value,
        datagram_parser,
        digest_challenge,
        digest_fields,
        digest_ha1,
        digest_open,
        digest_response,
        field_value,
        index_head,
        instance_value,
        line_value,
        message_type,
        name_addr_fields,
        nonce_open,
        nonce_seal,
        params_trusted,
        reply_builder,
        scan_message,
        single_index,
        single_value,
        usual_request,
        value_types,
        via_fields,
        via_received,
    )
except ImportError:  # not built (no C compiler at install time): same results, slower
    index_head = index_head_py
    line_value = line_value_py
    params_trusted = params_trusted_py
    single_index = single_index_py
    single_value = single_value_py
    # The value parsers' Python forms are headers.py's fast regexes, used when these are None.
    via_fields = None
    name_addr_fields = None
    digest_fields = None  # (kemi_auth's credentials: its Python parser reads them all)
    # (kemi_auth's verify: its Python path does it all)
    digest_open = digest_response = digest_ha1 = None
    digest_challenge = None  # (kemi_auth's challenge: its Python path makes the value)
    nonce_open = nonce_seal = None  # (kemi_auth's nonces: its Python path makes and reads them)
    # parser.parse_datagram's whole-datagram pass; without it the Python path does it all.
    scan_message = None
    # (registers SipMsg for scan_message and returns SipMsg.copy's compiled form)
    message_type = None
    cached_value = None  # (SipMsg's cached parsed values read without a Python call)
    instance_value = None  # (the same for Via's and NameAddr's params)
    value_types = None  # (what the compiled pass makes the values it parses ahead of)
    datagram_parser = None  # (parser.parse_datagram compiled around scan_message's pass)
    via_received = None  # (forwarding.via.received_via compiled for the usual request)
    field_value = None  # (SipMsg's properties that read a state slot, without a Python call)
    reply_builder = None  # (reply.build_reply compiled for the usual reply)
    usual_request = None  # (runtime.request_gate's usual request judged in one call)


def stale_build(source: Path, built: Path) -> bool:
    """True when the compiled module ``built`` is older than its C ``source``: a source tree
    where the build was not re-run after _fast.c changed. Such a module lacks the newest
    names, and every helper importing one of them falls back to its pure-Python form: the
    same answers, silently slower (benchmarks then measure the wrong thing)."""
    try:
        return source.stat().st_mtime > built.stat().st_mtime
    except OSError:  # an installed wheel carries no source beside the module
        return False


def _warn_if_stale_build() -> None:
    spec = None if PURE_PYTHON else importlib.util.find_spec("kemi_core.sip._fast")
    if spec is None or spec.origin is None:
        return  # not built, or kept out on purpose
    source = Path(__file__).with_name("_fast.c")
    if stale_build(source, Path(spec.origin)):
        warnings.warn(f"{spec.origin} is older than {source}: run `make dev` to rebuild it "
                      "(until then the compiled helpers it lacks run in pure Python)",
                      RuntimeWarning, stacklevel=1)


_warn_if_stale_build()


def bad(reason: str) -> SipParseError:
    return SipParseError(400, reason)


def quote_end(text: str, start: int) -> int:
    """Index just past the quoted-string that opens at ``start`` (backslash escapes honoured)."""
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"':
            return i + 1
        i += 1
    raise bad("Unterminated quoted string")


def unquote_string(text: str) -> str:
    """The content of a quoted-string without its quotes and backslash escapes."""
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    return re.sub(r"\\(.)", r"\1", inner, flags=re.S)


def split_commas(value: str, strict: bool = True) -> list[str]:
    """Split a #rule list on commas outside quotes and <...>; empty elements are dropped.
    An unterminated quote is a 400 when ``strict``, else it runs to the end of the value."""
    if "," not in value and '"' not in value:  # one element (a Contact, a Route): no scan
        value = value.strip()
        return [value] if value else []
    if '"' not in value and "<" not in value:
        parts = value.split(",")
    else:
        parts = []
        depth = 0
        start = 0
        i = 0
        n = len(value)
        while i < n:
            ch = value[i]
            if ch == '"':
                try:
                    i = quote_end(value, i)
                except SipParseError:
                    if strict:
                        raise
                    break
                continue
            if ch == "<":
                depth += 1
            elif ch == ">":
                depth = max(depth - 1, 0)
            elif ch == "," and depth == 0:
                parts.append(value[start:i])
                start = i + 1
            i += 1
        parts.append(value[start:])
    return [s for p in parts if (s := p.strip())]


def split_semis(text: str) -> list[str]:
    """Split on ';' outside quoted strings."""
    if '"' not in text:
        return text.split(";")
    parts: list[str] = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i = quote_end(text, i)
            continue
        if ch == ";":
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def parse_params(text: str) -> dict[str, str | None]:
    """Header parameters (the text after the first ';'): names lower-cased, LWS allowed
    around '=' and ';', values as written (quoted values keep their quotes). A name given
    twice keeps its first value (the one a lookup by name finds first in Kamailio too)."""
    if _PARAMS_FAST.fullmatch(text) is not None:
        return params_trusted(";" + text, {})
    params: dict[str, str | None] = {}
    for item in split_semis(text):
        name, eq, value = item.partition("=")
        name = name.strip(" \t")
        if not name or not TOKEN_CHARS.issuperset(name):
            raise bad("Malformed parameter")
        if eq:
            value = value.strip(" \t")
            if not value:
                raise bad("Empty parameter value")
            if value[0] == '"':
                if quote_end(value, 0) != len(value):
                    raise bad("Garbage after quoted parameter")
            elif not VALUE_CHARS.issuperset(value):
                raise bad("Bad parameter value")
            params.setdefault(name.lower(), value)
        else:
            params.setdefault(name.lower(), None)
    return params


def format_params(params: Mapping[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def parse_token_list(value: str) -> list[str]:
    """Require/Supported/Proxy-Require style option-tag lists."""
    out = []
    for item in split_commas(value):
        if not TOKEN_CHARS.issuperset(item):
            raise bad("Bad option tag")
        out.append(item)
    return out


def parse_uint(value: str, what: str, limit: int | None = None) -> int:
    """A decimal number (no sign, no LWS inside); above ``limit`` is a 400."""
    v = value.strip()
    if not v or not v.isdigit() or not v.isascii():
        raise bad(f"Bad {what}")
    n = int(v) if len(v) < 20 else 2**64
    if limit is not None and n > limit:
        raise bad(f"{what} out of range")
    return n
