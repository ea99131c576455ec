"""acc's ``multi_leg_info``: per-call-leg values from a set of AVPs, as Kamailio 5.6 writes them
(learned by running it).

``modparam("acc", "multi_leg_info", "src=$avp(src);dst=$avp(dst)")``: leg N is made of the N-th
value of each AVP, newest first (the value the script set last is leg 0); there are as many legs
as the longest AVP has values (at least one: with no value at all, one leg of empty values),
a leg an AVP has no value for gets an empty value (NULL in the database). Only AVPs are
accepted. The log appends every leg's ``name=value`` pairs after the extra values; the database
writes one row per leg, the leg names being column names.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from kemi_acc.records import parse_extra

#: A leg: (name, value) per AVP of the set; None where the AVP has no value for this leg.
Leg = tuple[tuple[str, object], ...]

#: upper bound of the legs read for one record (a loop bound; a call has a handful)
MAX_LEGS = 64

_AVP = re.compile(r"^\$avp\(([^()\[\]]+)\)$")


def parse_legs(text: str) -> list[tuple[str, str]]:
    """``name=$avp(x);...`` -> [(name, AVP name)]; ValueError for a malformed list or a value
    that is not an AVP (Kamailio refuses those at start-up too)."""
    out = []
    for name, spec in parse_extra(text):
        m = _AVP.match(spec.strip())
        if m is None:
            raise ValueError(f"{name}={spec}: only AVPs are accepted as leg info")
        out.append((name, m.group(1).strip()))
    return out


def read_legs(items: list[tuple[str, str]], read: Callable[[str], object]) -> tuple[Leg, ...]:
    """The legs of the current message (at least one); ``read(spec)`` reads a pseudo-variable."""
    legs: list[Leg] = []
    for index in range(MAX_LEGS):
        leg = tuple((name, _value(read, f"$(avp({avp})[{index}])")) for name, avp in items)
        if index and all(value is None for _, value in leg):
            break
        legs.append(leg)
    return tuple(legs)


def _value(read: Callable[[str], object], spec: str) -> object:
    try:
        return read(spec)
    except ValueError:
        return None
