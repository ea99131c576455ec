"""The sanity checks, sans-IO: a message in, the first failure out as (code, reason, headers).

Each check has Kamailio's bit value; ``run_checks`` runs the selected ones in bit order and
stops at the first failure, as Kamailio's sanity module does. A failure with code 0 is one
Kamailio reports without a reply (a non-digest credential scheme).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from kemi_core.api import SipMsg, SipParseError

RURI_SIP_VERSION = 1
RURI_SCHEME = 2
REQUIRED_HEADERS = 4
VIA_SIP_VERSION = 8  # disabled in Kamailio: always passes
VIA_PROTOCOL = 16  # disabled in Kamailio: always passes
CSEQ_METHOD = 32
CSEQ_VALUE = 64
CONTENT_LENGTH = 128
EXPIRES_VALUE = 256
PROXY_REQUIRE = 512
PARSE_URIS = 1024
DIGEST_CREDENTIALS = 2048
DUPLICATE_TAGS = 4096
AUTHORIZATION = 8192
FIRST_VIA = 16384

#: Kamailio's default_checks (3047) and uri_checks (7).
DEFAULT_CHECKS = 3047
DEFAULT_URI_CHECKS = 7
#: uri_checks bits: which URIs the PARSE_URIS check parses.
URI_RURI, URI_FROM, URI_TO, URI_CONTACT = 1, 2, 4, 8

_REQUEST_ONLY = RURI_SIP_VERSION | RURI_SCHEME | CSEQ_METHOD | PROXY_REQUIRE | DIGEST_CREDENTIALS \
    | AUTHORIZATION
_DIGEST_REQUIRED = ("username", "realm", "nonce", "uri", "response")
_CRED_HEADERS = ("authorization", "proxy-authorization")
_TAG_PARAM = re.compile(r";\s*tag\s*=", re.IGNORECASE)


@attrs.frozen
class Failure:
    """A failed check: the reply Kamailio sends (code 0: none) and extra reply headers."""

    check: int
    code: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class Settings:
    uri_checks: int = DEFAULT_URI_CHECKS
    proxy_require: frozenset[str] = frozenset()


Check = Callable[[SipMsg, Settings], "Failure | None"]


def _fail(check: int, code: int, reason: str, *headers: tuple[str, str]) -> Failure:
    return Failure(check, code, reason, tuple(headers))


def check_ruri_version(msg: SipMsg, s: Settings) -> Failure | None:
    if msg.version.upper() != "SIP/2.0":
        return _fail(RURI_SIP_VERSION, 505, "Version Not Supported (R-URI)")
    return None


def check_ruri_scheme(msg: SipMsg, s: Settings) -> Failure | None:
    try:
        uri = msg.uri
    except SipParseError:
        return _fail(RURI_SCHEME, 400, "Bad Request URI")
    if uri.scheme not in ("sip", "sips", "tel"):
        return _fail(RURI_SCHEME, 416, "Unsupported URI Scheme in Request URI")
    return None


_REQUIRED = frozenset(("to", "from", "cseq", "call-id", "via"))


def check_required_headers(msg: SipMsg, s: Settings) -> Failure | None:
    if not _REQUIRED.issubset(msg.header_keys):
        return _fail(REQUIRED_HEADERS, 400, "Missing Required Header in Request")
    return None


def _cseq_method_failure(msg: SipMsg, parts: list[str]) -> Failure | None:
    if len(parts) != 2 or parts[1] != msg.method:
        return _fail(CSEQ_METHOD, 400, "CSeq method does not match request method")
    return None


def _cseq_value_failure(parts: list[str]) -> Failure | None:
    number = parts[0] if parts else ""
    if not number.isascii() or not number.isdigit():
        return _fail(CSEQ_VALUE, 400, "CSeq number is illegal")
    return None


def check_cseq_method(msg: SipMsg, s: Settings) -> Failure | None:
    text = msg.header("cseq")
    return None if text is None else _cseq_method_failure(msg, text.split())


def check_cseq_value(msg: SipMsg, s: Settings) -> Failure | None:
    text = msg.header("cseq")
    return None if text is None else _cseq_value_failure(text.split())


def check_cseq(msg: SipMsg, s: Settings) -> Failure | None:
    """check_cseq_method then check_cseq_value (both selected: the usual case), the CSeq
    header read and split once."""
    text = msg.header("cseq")
    if text is None:
        return None
    parts = text.split()
    return _cseq_method_failure(msg, parts) or _cseq_value_failure(parts)


def check_content_length(msg: SipMsg, s: Settings) -> Failure | None:
    text = msg.header("content-length")
    if text is None:
        return None
    if not text.isdigit() or int(text) != len(msg.body):
        return _fail(CONTENT_LENGTH, 400, "Content-Length mis-match")
    return None


def check_expires(msg: SipMsg, s: Settings) -> Failure | None:
    text = msg.header("expires")
    if text is None:
        return None
    if not text.strip().isascii() or not text.strip().isdigit():
        return _fail(EXPIRES_VALUE, 400, "Expires value is illegal")
    return None


def check_proxy_require(msg: SipMsg, s: Settings) -> Failure | None:
    tokens = [t.strip() for v in msg.headers("proxy-require") for t in v.split(",") if t.strip()]
    for token in tokens:
        if token not in s.proxy_require:
            return _fail(PROXY_REQUIRE, 420, "Bad Proxy Require Extension", ("Unsupported", token))
    return None


def _uri_of_header(msg: SipMsg, name: str) -> bool:
    """The header's name-addr parses and holds a URI that parses."""
    try:
        na = msg.from_ if name == "from" else msg.to
        uri = na.uri
    except SipParseError:
        return False
    return uri is not None and (uri.host != "" or uri.scheme == "tel")


def check_parse_uris(msg: SipMsg, s: Settings) -> Failure | None:
    bits = s.uri_checks
    if bits & URI_RURI and msg.is_request:
        try:
            msg.uri  # noqa: B018 - parsing is the check
        except SipParseError:
            return _fail(PARSE_URIS, 400, "Bad Request URI")
    if bits & URI_FROM and not _uri_of_header(msg, "from"):
        return _fail(PARSE_URIS, 400, "Invalid From Header")
    if bits & URI_TO and not _uri_of_header(msg, "to"):
        return _fail(PARSE_URIS, 400, "Ivalid To Header")  # sic: Kamailio's reason phrase
    if bits & URI_CONTACT and msg.has_header("contact"):
        try:
            contacts = msg.contacts
            ok = all(c.is_star or c.uri is not None for c in contacts)
        except SipParseError:
            ok = False
        if not ok:
            return _fail(PARSE_URIS, 400, "Bad Contact URI")
    return None


def _credentials(msg: SipMsg) -> list[str]:
    return [v for h in _CRED_HEADERS for v in msg.headers(h)]


def _digest_params(value: str) -> dict[str, str] | None:
    """The parameters of a Digest credential, None for another scheme."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    for m in re.finditer(r'([A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)', rest):
        params[m.group(1).lower()] = m.group(2).strip('"')
    return params


def check_digest(msg: SipMsg, s: Settings) -> Failure | None:
    for value in _credentials(msg):
        params = _digest_params(value)
        if params is None:
            return _fail(DIGEST_CREDENTIALS, 0, "not a digest credential")
        if any(not params.get(k) for k in _DIGEST_REQUIRED):
            return _fail(DIGEST_CREDENTIALS, 400, "Bad Auth Credentials")
    return None


def check_authorization(msg: SipMsg, s: Settings) -> Failure | None:
    for value in _credentials(msg):
        params = _digest_params(value)
        if params is not None and any(not params.get(k) for k in _DIGEST_REQUIRED):
            return _fail(AUTHORIZATION, 400, "Bad Auth Credentials")
    return None


def check_duplicate_tags(msg: SipMsg, s: Settings) -> Failure | None:
    for name, reason in (("to", "Many To Tag Params"), ("from", "Many From Tag Params")):
        value = msg.header(name)
        if value is not None and len(_TAG_PARAM.findall(value.rsplit(">", 1)[-1])) > 1:
            return _fail(DUPLICATE_TAGS, 400, reason)
    return None


def check_first_via(msg: SipMsg, s: Settings) -> Failure | None:
    try:
        via = msg.via
    except SipParseError:
        return _fail(FIRST_VIA, 400, "Missing Via Header")
    if not via.host:
        return _fail(FIRST_VIA, 400, "Missing Via Header")
    return None


def _always_ok(msg: SipMsg, s: Settings) -> Failure | None:
    return None


#: Every check, in Kamailio's order (its bit value).
CHECKS: tuple[tuple[int, Check], ...] = (
    (RURI_SIP_VERSION, check_ruri_version),
    (RURI_SCHEME, check_ruri_scheme),
    (REQUIRED_HEADERS, check_required_headers),
    (VIA_SIP_VERSION, _always_ok),
    (VIA_PROTOCOL, _always_ok),
    (CSEQ_METHOD, check_cseq_method),
    (CSEQ_VALUE, check_cseq_value),
    (CONTENT_LENGTH, check_content_length),
    (EXPIRES_VALUE, check_expires),
    (PROXY_REQUIRE, check_proxy_require),
    (PARSE_URIS, check_parse_uris),
    (DIGEST_CREDENTIALS, check_digest),
    (DUPLICATE_TAGS, check_duplicate_tags),
    (AUTHORIZATION, check_authorization),
    (FIRST_VIA, check_first_via),
)


#: the check functions a ``checks`` value selects, in order (a script uses one or two values)
_SELECTED: dict[int, tuple[Check, ...]] = {}


def _selected(checks: int) -> tuple[Check, ...]:
    found = _SELECTED.get(checks)
    if found is None:
        if len(_SELECTED) >= 256:
            _SELECTED.clear()
        chosen = [check for bit, check in CHECKS if checks & bit and check is not _always_ok]
        if check_cseq_method in chosen and check_cseq_value in chosen:  # neighbours in CHECKS
            at = chosen.index(check_cseq_method)
            chosen[at:at + 2] = [check_cseq]
        found = _SELECTED[checks] = tuple(chosen)
    return found


def run_checks(msg: SipMsg, checks: int, settings: Settings) -> Failure | None:
    """The first failing check among ``checks`` (request-only ones skipped for a reply)."""
    if not msg.is_request:
        checks &= ~_REQUEST_ONLY
    for check in _selected(checks):
        failure = check(msg, settings)
        if failure is not None:
            return failure
    return None
