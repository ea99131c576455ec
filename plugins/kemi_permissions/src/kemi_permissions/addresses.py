"""The address table (allow_address and friends), sans-IO: rows in, matching out.

Kamailio keeps three caches: exact IP addresses (mask 32 / 128, or 0), subnets (shorter
masks) and DNS names. An IP argument is matched against the first two, anything else against
the names (exact, case-sensitive: no DNS lookup). Port 0 in a row matches any port. Groups are
positive integers; a row with another group makes the whole load fail, as in Kamailio.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class InvalidRecord(ValueError):
    """A row the address table must not hold (Kamailio: "database problem - invalid record")."""


@attrs.frozen
class AddressRow:
    grp: int
    ip_addr: str
    mask: int
    port: int
    tag: str | None


@attrs.frozen
class Match:
    grp: int
    tag: str | None


def make_row(raw: Mapping[str, Any]) -> AddressRow:
    try:
        grp = int(raw["grp"])
        mask = int(raw.get("mask") or 0)
        port = int(raw.get("port") or 0)
    except (TypeError, ValueError) as exc:
        raise InvalidRecord(f"bad number in {dict(raw)!r}: {exc}")
    ip_addr = str(raw.get("ip_addr") or "").strip()
    if grp < 1 or not ip_addr or not 0 <= port <= 65535:
        raise InvalidRecord(f"invalid record {dict(raw)!r}")
    tag = raw.get("tag")
    return AddressRow(grp, ip_addr, mask, port, None if tag is None else str(tag))


def parse_ip(text: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


class AddressTable:
    """The compiled rows: exact addresses in a dict, subnets in a list, names in a dict."""

    def __init__(self, rows: Iterable[AddressRow]) -> None:
        self.rows = list(rows)
        self.exact: dict[IpAddress, list[tuple[int, int, str | None]]] = {}
        self.subnets: list[tuple[IpNetwork, int, int, str | None]] = []
        self.names: dict[str, list[tuple[int, int, str | None]]] = {}
        for r in self.rows:
            ip = parse_ip(r.ip_addr)
            if ip is None:
                self.names.setdefault(r.ip_addr, []).append((r.grp, r.port, r.tag))
                continue
            full = ip.max_prefixlen
            mask = full if r.mask in (0, full) or r.mask > full else r.mask
            if mask < 0:
                raise InvalidRecord(f"invalid mask {r.mask} for {r.ip_addr}")
            if mask == full:
                self.exact.setdefault(ip, []).append((r.grp, r.port, r.tag))
            else:
                net = ipaddress.ip_network(f"{ip}/{mask}", strict=False)
                self.subnets.append((net, r.grp, r.port, r.tag))
        self.subnets.sort(key=lambda s: s[1])  # by group, as Kamailio keeps them

    def find(self, addr: str, port: int, grp: int | None = None) -> Match | None:
        """The first row of group ``grp`` (any group when None) matching ``addr:port``."""
        ip = parse_ip(addr)
        if ip is None:
            return _pick(self.names.get(addr.strip(), ()), port, grp)
        hit = _pick(self.exact.get(ip, ()), port, grp)
        if hit is not None:
            return hit
        for net, g, p, tag in self.subnets:
            if (grp is None or g == grp) and (p == 0 or p == port) and ip in net:
                return Match(g, tag)
        return None


def _pick(entries: Iterable[tuple[int, int, str | None]], port: int,
          grp: int | None) -> Match | None:
    found = [(g, t) for g, p, t in entries if (grp is None or g == grp) and (p == 0 or p == port)]
    if not found:
        return None
    g, t = min(found, key=lambda e: e[0])
    return Match(g, t)
