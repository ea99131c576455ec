"""uritext's spans: the quick paths for values without quotes give what the character scan
gives."""

from __future__ import annotations

import random

import pytest

from kemi_nathelper.uritext import (
    _first_element_scan,
    _unquoted,
    first_element,
    hostport_in_uri,
    uri_in_element,
)

VALUES = [
    "<sip:sipp@192.168.1.10:5061>",
    "  <sip:a@b>;expires=60 , <sip:c@d>",
    "sip:a@b;x=1,sip:c@d",
    "\t<sip:a,b@h>, <sip:c@d>",
    '"Bob, Jr." <sip:bob@h>, <sip:x@y>',
    '"a\\"<" <sip:q@h>',
    "",
    " , ",
    "><sip:a@b>, c",
    "sip:a@b ",
]


@pytest.mark.parametrize("value", VALUES)
def test_first_element_matches_the_scan(value: str) -> None:
    assert first_element(value) == _first_element_scan(value)


def _uri_in_element_scan(element: str) -> tuple[int, int, bool]:
    lt = next((i for i, ch in _unquoted(element) if ch == "<"), -1)
    if lt >= 0:
        gt = element.find(">", lt)
        return lt + 1, (gt if gt >= 0 else len(element)), True
    semi = element.find(";")
    return 0, (semi if semi >= 0 else len(element)), False


def test_random_values_match_the_scan() -> None:
    rng = random.Random(7)
    alphabet = 'ab@:;<>," \t\\'
    for _ in range(20000):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 14)))
        assert first_element(value) == _first_element_scan(value), value
        assert uri_in_element(value) == _uri_in_element_scan(value), value


def _hostport_in_uri_loop(uri: str) -> tuple[int, int, int]:
    """hostport_in_uri as it was first written (the reference)."""
    colon = uri.find(":")
    if colon < 0:
        raise ValueError(f"not a URI: {uri!r}")
    start = colon + 1
    stop = len(uri)
    for ch in ";?":
        k = uri.find(ch, start)
        at = uri.find("@", start)
        if k >= 0 and (at < 0 or k > at):
            stop = min(stop, k)
    at = uri.find("@", start, stop)
    if at >= 0:
        start = at + 1
    if uri.startswith("[", start):
        close = uri.find("]", start, stop)
        if close < 0:
            raise ValueError(f"bad IPv6 reference in {uri!r}")
        port_colon = close + 1 if uri.startswith(":", close + 1) else -1
    else:
        port_colon = uri.find(":", start, stop)
    return start, (port_colon + 1 if port_colon >= 0 else -1), stop


def _outcome(f: object, uri: str) -> object:
    try:
        return f(uri)  # type: ignore[operator]
    except ValueError as exc:
        return str(exc)


def test_hostport_in_uri_matches_the_reference() -> None:
    rng = random.Random(11)
    alphabet = "sip:a@h;?[]1"
    uris = ["sip:a@h:5060;lr", "sip:a;b@h;x?y", "sip:[::1]:5;x", "sip:h?x;y", "sip:a@b@c;d",
            "sip:a;x?y@h", "sips:h", "nocolon"]
    uris += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 14)))
             for _ in range(30000)]
    for uri in uris:
        assert _outcome(hostport_in_uri, uri) == _outcome(_hostport_in_uri_loop, uri), uri
