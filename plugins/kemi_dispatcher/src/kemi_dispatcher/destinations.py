"""Destination sets: the list file (Kamailio's format), the database table, and their order.

A line of the list file is ``setid uri [flags [priority [attrs]]]``; ``#`` starts a comment.
Flags (decimal or 0x hex): 1 inactive, 2 trying, 4 disabled, 8 probing, 16 no DNS resolve at
load, 32 never ping. Attributes are ``name=value;...``; the ones with a meaning here are duid,
maxload, weight, rweight, socket, sockname, ping_from and obproxy.

The order matters (round-robin and hashing index into it, ``dispatcher.list`` shows it), and
follows what Kamailio 5.6 does, as observed: inside a set, the destinations in reverse file order,
then stably sorted by priority, highest first; the sets themselves in the post-order of a
balanced (AVL) tree keyed by set id, built in the order the sets first appear.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from kemi_core.api import uri_destination
from kemi_core.sip import SipParseError, parse_uri

log = logging.getLogger("kemi.dispatcher")

# destination flags (the list file's and the state's)
INACTIVE, TRYING, DISABLED, PROBING, NORESOLVE, NOPING = 1, 2, 4, 8, 16, 32
STATE_MASK = INACTIVE | TRYING | DISABLED | PROBING


class ListError(ValueError):
    """A destination that cannot be used (with ds_load_mode 1 it stops the load)."""


@attrs.frozen
class Dest:
    """One destination of a set, as loaded (its state lives in the shared store)."""

    setid: int
    uri: str
    flags: int = 0
    priority: int = 0
    attrs: str = ""
    duid: str = ""
    maxload: int = 0
    weight: int = 0
    rweight: int = 0
    socket: str = ""
    sockname: str = ""
    ping_from: str = ""
    obproxy: str = ""
    #: where it is reached: (proto, ip, port); ip "" when the name did not resolve
    proto: str = "udp"
    ip: str = ""
    port: int = 5060

    @property
    def key(self) -> str:
        return f"{self.setid} {self.uri}"


def parse_attrs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        if name.strip():
            out[name.strip().lower()] = value.strip() if eq else ""
    return out


def _int(text: str, what: str) -> int:
    try:
        return int(text, 0) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise ListError(f"bad {what} {text!r}") from None


def _weight(value: str) -> int:
    try:
        w = int(value)
    except ValueError:
        return 0
    return w if 1 <= w <= 100 else 0


def make_dest(setid: int, uri: str, flags: int = 0, priority: int = 0, attrs_text: str = "",
              attrs_none: bool = False) -> Dest:
    """A destination from its fields; ListError when the URI is not a SIP URI."""
    try:
        parsed = parse_uri(uri)
    except SipParseError as exc:
        raise ListError(f"bad destination URI {uri!r}: {exc.reason}") from None
    if parsed.scheme not in ("sip", "sips"):
        raise ListError(f"bad destination URI {uri!r}: not a sip/sips URI")
    if not attrs_text and attrs_none:
        attrs_text = "none=yes"
    a = parse_attrs(attrs_text)
    proto, ip, port = "udp", "", parsed.port or (5061 if parsed.scheme == "sips" else 5060)
    if not flags & NORESOLVE:
        try:
            found = uri_destination(uri)
        except (SipParseError, ValueError):
            found = None
        if found is not None:
            proto, ip, port = found
        else:
            log.warning("dispatcher: cannot resolve %s", uri)
            proto = parsed.transport or ("tls" if parsed.scheme == "sips" else "udp")
    maxload = a.get("maxload", "0")
    return Dest(setid=setid, uri=uri, flags=flags, priority=priority, attrs=attrs_text,
                duid=a.get("duid", ""), maxload=int(maxload) if maxload.isdigit() else 0,
                weight=_weight(a.get("weight", "0")), rweight=_weight(a.get("rweight", "0")),
                socket=a.get("socket", ""), sockname=a.get("sockname", ""),
                ping_from=a.get("ping_from", ""), obproxy=a.get("obproxy", ""),
                proto=proto, ip=ip, port=port)


def parse_list(text: str, source: str = "list", strict: bool = False,
               attrs_none: bool = False) -> list[Dest]:
    """The destinations of a list file's text, in file order. A bad line is logged and skipped,
    or raises ListError with ``source:line`` when ``strict`` (ds_load_mode 1)."""
    out: list[Dest] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split(None, 4)
        try:
            if len(fields) < 2:
                raise ListError("a line needs a set id and a destination URI")
            setid = _int(fields[0], "set id")
            flags = _int(fields[2], "flags") if len(fields) > 2 else 0
            priority = _int(fields[3], "priority") if len(fields) > 3 else 0
            dest = make_dest(setid, fields[1], flags, priority,
                             fields[4].strip() if len(fields) > 4 else "", attrs_none)
        except ListError as exc:
            if strict:
                raise ListError(f"{source}:{lineno}: {exc}") from None
            log.error("dispatcher: %s:%d: %s: line skipped", source, lineno, exc)
            continue
        out.append(dest)
    return out


# ---- the loaded list --------------------------------------------------------------------
@attrs.frozen
class DestSet:
    setid: int
    dests: tuple[Dest, ...]
    #: alg 9: 100 slots of destination indexes, by weight
    wlist: tuple[int, ...] = ()


@attrs.frozen
class DsList:
    """Every set, in Kamailio's listing order; ``sets[setid]``."""

    order: tuple[int, ...]
    sets: dict[int, DestSet]

    def __iter__(self) -> Iterator[DestSet]:
        return (self.sets[s] for s in self.order)

    def dests(self) -> Iterator[Dest]:
        for dset in self:
            yield from dset.dests

    def __len__(self) -> int:
        return sum(len(d.dests) for d in self)


def weight_slots(dests: tuple[Dest, ...], setid: int) -> tuple[int, ...]:
    """Alg 9's table: each destination gets ``weight`` of 100 slots (a sum over 100 drops the
    destinations that overflow it; under 100, the last destination fills the rest), shuffled
    once with the set id as seed, so every worker and node uses the same table."""
    if not any(d.weight for d in dests):
        return ()
    slots: list[int] = []
    for i, d in enumerate(dests):
        if d.weight and len(slots) + d.weight <= 100:
            slots += [i] * d.weight
    if len(slots) < 100:
        slots += [len(dests) - 1] * (100 - len(slots))
    random.Random(setid).shuffle(slots)
    return tuple(slots)


def build(dests: Iterable[Dest]) -> DsList:
    """Group destinations into sets and order them as Kamailio does."""
    by_set: dict[int, list[Dest]] = {}
    for d in dests:
        by_set.setdefault(d.setid, []).append(d)
    sets = {}
    for setid, members in by_set.items():
        ordered = sorted(reversed(members), key=lambda d: -d.priority)
        sets[setid] = DestSet(setid, tuple(ordered), weight_slots(tuple(ordered), setid))
    return DsList(tuple(_avl_postorder(list(by_set))), sets)


def _avl_postorder(keys: list[int]) -> list[int]:
    """The keys in the post-order of an AVL tree built by inserting them in turn."""
    root: list[Any] | None = None  # node: [key, left, right, height]

    def height(n: list[Any] | None) -> int:
        return n[3] if n is not None else 0

    def fix(n: list[Any]) -> list[Any]:
        n[3] = 1 + max(height(n[1]), height(n[2]))
        return n

    def rotate_right(n: list[Any]) -> list[Any]:
        left = n[1]
        n[1], left[2] = left[2], n
        fix(n)
        return fix(left)

    def rotate_left(n: list[Any]) -> list[Any]:
        right = n[2]
        n[2], right[1] = right[1], n
        fix(n)
        return fix(right)

    def insert(n: list[Any] | None, key: int) -> list[Any]:
        if n is None:
            return [key, None, None, 1]
        if key < n[0]:
            n[1] = insert(n[1], key)
        elif key > n[0]:
            n[2] = insert(n[2], key)
        else:
            return n
        fix(n)
        balance = height(n[1]) - height(n[2])
        if balance > 1:
            if key > n[1][0]:
                n[1] = rotate_left(n[1])
            return rotate_right(n)
        if balance < -1:
            if key < n[2][0]:
                n[2] = rotate_right(n[2])
            return rotate_left(n)
        return n

    for k in keys:
        root = insert(root, k)
    out: list[int] = []

    def walk(n: list[Any] | None) -> None:
        if n is not None:
            walk(n[1])
            walk(n[2])
            out.append(n[0])

    walk(root)
    return out


def rows_to_dests(rows: list[dict[str, Any]], cols: dict[str, str], strict: bool = False,
                  attrs_none: bool = False) -> list[Dest]:
    """Destinations from ``dispatcher`` table rows (column names from the *_col params)."""
    out = []
    for row in rows:
        try:
            out.append(make_dest(int(row[cols["setid"]]), str(row[cols["destination"]]),
                                 int(row.get(cols["flags"]) or 0),
                                 int(row.get(cols["priority"]) or 0),
                                 str(row.get(cols["attrs"]) or ""), attrs_none))
        except (ListError, KeyError, ValueError, TypeError) as exc:
            if strict:
                raise ListError(f"dispatcher table row {row.get('id')}: {exc}") from None
            log.error("dispatcher: table row %s skipped: %s", row.get("id"), exc)
    return out
