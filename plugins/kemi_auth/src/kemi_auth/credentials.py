"""Digest credentials (RFC 7616 3.4, RFC 2617 3.2.2): parsing ``Authorization`` values.

Sans-IO: text in, :class:`Credentials` out. A value that is not Digest, or lacks a required
parameter, is *malformed* (Kamailio answers it with a new challenge). A value with a parameter
longer than any honest client sends is *overlong*: :class:`OverlongCredentials`, which the
module answers with 400 (an attacker probing buffer sizes learns nothing and costs nothing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from operator import itemgetter
from typing import NamedTuple

from kemi_core.sip import digest_fields  # (None when kemi_core.sip._fast is not built)

#: Longest accepted value per parameter (anything longer is an attack or a broken client).
#: A SHA-512 response is 128 hex digits; a request URI may be long, but not this long.
LIMITS: dict[str, int] = {
    "username": 256, "realm": 256, "nonce": 256, "uri": 2048, "response": 128,
    "algorithm": 32, "cnonce": 256, "opaque": 256, "qop": 32, "nc": 8, "userhash": 8,
}
#: Longest accepted header value, and most parameters in one value.
MAX_VALUE = 4096
MAX_PARAMS = 24
_OTHER_LIMIT = 256
_REQUIRED = ("username", "realm", "nonce", "uri", "response")


class OverlongCredentials(ValueError):
    """A credentials value, or one of its parameters, is longer than any client sends."""


class MalformedCredentials(ValueError):
    """A credentials value that cannot be read as Digest credentials."""


class NotDigest(MalformedCredentials):
    """Credentials of another scheme (Basic ...): not ours to check, as if absent."""


class Credentials(NamedTuple):
    """One Digest response as the client sent it (values unquoted). A named tuple: made for
    every authenticated request, at half the cost of a frozen attrs class."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = ""
    cnonce: str = ""
    opaque: str = ""
    qop: str = ""
    nc: str = ""
    #: the raw header value, to find the header again (consume_credentials)
    raw: str = ""

    @property
    def user(self) -> str:
        """The user part of ``username`` (some clients send ``user@domain``)."""
        return self.username.partition("@")[0]

    @property
    def domain(self) -> str:
        """The domain part of ``username`` when it has one, else ``realm``."""
        user, at, domain = self.username.partition("@")
        return domain if at else self.realm


#: One ``name=value`` (the value a quoted-string or a token) and the comma after it.
_PARAM = re.compile(r'[ \t,]*([!%\'*+.0-9A-Z_`a-z~-]+)[ \t]*=[ \t]*'
                    r'(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^",\s]*))[ \t]*(?:,|$)')
_ESCAPE = re.compile(r"\\(.)")
#: _PARAM for a text with no backslash, where a quoted-string is just ``"[^"]*"`` (that one
#: class runs ~3x faster in sre than ``[^"\\]``), whole: findall reads every parameter in
#: one pass, and the lengths of the whole matches tell whether they cover the text.
_PLAIN_PARAMS = re.compile(r'([ \t,]*([!%\'*+.0-9A-Z_`a-z~-]+)[ \t]*=[ \t]*'
                           r'(?:"([^"]*)"|([^",\s]*))[ \t]*(?:,|$))')
_WHOLE = itemgetter(0)
#: a Credentials from the 11 items digest_fields returns, without a Python __new__ frame
_new_tuple = tuple.__new__


def parse_params(value: str) -> dict[str, str]:
    """The ``name=value`` pairs after the ``Digest`` scheme (names lower-cased, values
    unquoted). Raises Overlong/MalformedCredentials."""
    if len(value) > MAX_VALUE:
        raise OverlongCredentials(f"credentials of {len(value)} characters")
    text = value.strip()
    scheme, _, rest = text.partition(" ")
    if scheme.lower() != "digest":
        raise NotDigest(f"scheme {scheme[:20]!r} is not Digest")
    rest = rest.rstrip(" \t,")
    if "\\" not in rest:
        found = _PLAIN_PARAMS.findall(rest)
        if sum(map(len, map(_WHOLE, found))) == len(rest):  # else unreadable: the loop says where
            return _checked(found)
    return _checked(_escaped_params(rest))


def _escaped_params(rest: str) -> Iterator[tuple[str, str, str, str]]:
    """Each parameter read one by one (escapes allowed), in the shape of _PLAIN_PARAMS'
    findall: ("", name, unquoted value, "")."""
    pos, end, match = 0, len(rest), _PARAM.match
    while pos < end:
        m = match(rest, pos)
        if m is None:
            raise MalformedCredentials(f"unreadable parameters at {rest[pos:pos + 20]!r}")
        name, quoted, token = m.groups()
        yield "", name, (token if quoted is None else (_ESCAPE.sub(r"\1", quoted) if "\\" in quoted
                                                        else quoted)), ""
        pos = m.end()


def _checked(found: Iterable[tuple[str, str, str, str]]) -> dict[str, str]:
    """The parameters by lower-cased name (the first of a repeated one), each checked against
    its length limit, in order. ``found``: (whole match, name, quoted value, token value)."""
    params: dict[str, str] = {}
    for _, name, quoted, token in found:
        val = quoted or token  # (one of them is "")
        name = name.lower()
        if len(val) > LIMITS.get(name, _OTHER_LIMIT):
            raise OverlongCredentials(f"parameter {name} of {len(val)} characters")
        if len(params) >= MAX_PARAMS:
            raise OverlongCredentials(f"more than {MAX_PARAMS} parameters")
        params.setdefault(name, val)
    return params


def parse_credentials(value: str) -> Credentials:
    """Digest credentials from one Authorization/Proxy-Authorization value: the usual shape
    read in one compiled call (kemi_core.sip._fast.digest_fields), anything else (escapes,
    errors, overlong parameters ...) by parse_credentials_py."""
    if digest_fields is not None:
        fields = digest_fields(value)
        if fields is not None:
            return _new_tuple(Credentials, fields)
    return parse_credentials_py(value)


def parse_credentials_py(value: str) -> Credentials:
    """parse_credentials in Python: the reference digest_fields is tested against."""
    p = parse_params(value)
    missing = [n for n in _REQUIRED if not p.get(n)]
    if missing:
        raise MalformedCredentials(f"missing {', '.join(missing)}")
    if p.get("userhash", "").lower() == "true":  # RFC 7616 3.4.4: not offered, so not taken
        raise MalformedCredentials("userhash is not supported")
    return Credentials(
        username=p["username"], realm=p["realm"], nonce=p["nonce"], uri=p["uri"],
        response=p["response"], algorithm=p.get("algorithm", ""), cnonce=p.get("cnonce", ""),
        opaque=p.get("opaque", ""), qop=p.get("qop", ""), nc=p.get("nc", ""), raw=value)


def realm_of(value: str) -> str | None:
    """Just the realm of a credentials value (has_credentials), None when unreadable."""
    try:
        return parse_params(value).get("realm")
    except ValueError:
        return None
