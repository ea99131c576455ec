"""htable's table definitions and match operators (sans-IO)."""

from __future__ import annotations

import pytest

from kemi_core.api import ConfigError
from kemi_htable.spec import parse_spec
from kemi_htable.table import count_matching, matcher


def test_definitions() -> None:
    s = parse_spec("ipban=>size=8;autoexpire=300;")
    assert (s.name, s.size, s.slots, s.autoexpire, s.dbtable, s.initval, s.updateexpire) == (
        "ipban", 8, 256, 300, "", None, True)
    s = parse_spec(" a => size=40; dbtable=htable_a; dbmode=1; initval=0; updateexpire=0;"
                   " cols='k,v1,v2'")
    assert (s.name, s.size, s.dbtable, s.dbmode, s.initval, s.updateexpire, s.cols) == (
        "a", 14, "htable_a", 1, 0, False, ("k", "v1", "v2"))
    assert parse_spec("b=>size=1").size == 3


@pytest.mark.parametrize("text", ["noarrow", "=>size=4", "a=>size=x", "a=>bogus=1",
                                  "a=>size", "a b=>size=4", "a=>cols='k'"])
def test_bad_definitions(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_spec(text)


def test_match_operators() -> None:
    names = ["1.2.3.4", "10.0.0.1", "abc"]
    for op, val, want in (("eq", "abc", 1), ("ne", "abc", 2), ("sw", "1", 2), ("ew", "1", 1),
                          ("in", "0.0", 1), ("re", r"^\d", 2)):
        test = matcher(op, val)
        assert test is not None and sum(map(test, names)) == want, op
    assert matcher("xx", "a") is None and matcher("re", "(") is None
    assert count_matching(names, "==abc") == 1 and count_matching(names, "~%1") == 2
    assert count_matching(names, "%~1") == 1 and count_matching(names, "~~b") == 1
    assert count_matching(names, r"\.") == 2
