"""uritext's spans: the quick paths for values without quotes give what the character scan
gives."""

from __future__ import annotations

import random

import pytest

from kemi_nathelper.uritext import (
    _first_element_scan,
    _unquoted,
    first_element,
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
