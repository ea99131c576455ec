"""Kamailio's tls.cfg: TLS domain profiles, parsed from text (no files opened, no contexts).

A profile starts with ``[server:DOMAIN]`` or ``[client:DOMAIN]``; DOMAIN is ``default``,
``any`` or ``IP:PORT`` (``[::1]:5061`` for IPv6). ``name = value`` lines set its attributes;
``#`` starts a comment. ``complete`` fills what a profile leaves unset from the defaults it is
given (the service passes Kamailio's own values for a tls.cfg, the module parameters without
one) and makes a missing ``[server:default]`` / ``[client:default]`` from them alone.

Errors are ConfigError with the tls.cfg file and line.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

import attrs

from kemi_core.api import ConfigError

#: Attributes a profile may set, with their kind (Kamailio's names; ``method`` is an alias of
#: ``tls_method``). ``bool`` accepts yes/no/on/off/true/false/1/0.
ATTRIBUTES: dict[str, type] = {
    "tls_method": str,
    "verify_certificate": bool,
    "require_certificate": bool,
    "verify_client": str,
    "private_key": str,
    "certificate": str,
    "verify_depth": int,
    "ca_list": str,
    "ca_path": str,
    "crl": str,
    "cipher_list": str,
    "server_name": str,
    "server_name_mode": int,
    "server_id": str,
}
ALIASES = {"method": "tls_method"}

TRUE = frozenset({"yes", "on", "true", "1", "enable"})
FALSE = frozenset({"no", "off", "false", "0", "disable"})

#: tls_method values and the (minimum, maximum) protocol versions they allow; None: no bound.
#: Kamailio 5.6.3 knows no TLSv1.3 nor TLSv1.3+ (refused: "Unsupported enum value"); TLS 1.3
#: comes with TLSv1.2+, TLSv1+ or SSLv23.
METHODS: dict[str, tuple[str | None, str | None]] = {
    "tlsv1": ("TLSv1", "TLSv1"),
    "tlsv1+": ("TLSv1", None),
    "tlsv1.1": ("TLSv1_1", "TLSv1_1"),
    "tlsv1.1+": ("TLSv1_1", None),
    "tlsv1.2": ("TLSv1_2", "TLSv1_2"),
    "tlsv1.2+": ("TLSv1_2", None),
    "sslv23": (None, None),
}
#: Methods OpenSSL 3 (and so Python's ssl) no longer has.
GONE_METHODS = frozenset({"sslv2", "sslv3"})

VERIFY_CLIENT = frozenset({"off", "on", "optional", "optional_no_ca"})

_SECTION = re.compile(r"^\[\s*(server|client)\s*:\s*(.+?)\s*\]$", re.IGNORECASE)


@attrs.frozen
class Domain:
    """Which connections a profile is for: ``default``, ``any`` or one ip:port."""

    kind: str  # "default" | "any" | "addr"
    ip: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind != "addr":
            return self.kind
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@attrs.define
class Profile:
    """One ``[server:...]`` or ``[client:...]`` section: its attributes as written (unset ones
    are absent from ``attrs``), where it was written, and the defaults it is completed with."""

    role: str  # "server" | "client"
    domain: Domain
    attrs: dict[str, object] = attrs.Factory(dict)
    file: str = "<modparams>"
    line: int = 0

    @property
    def name(self) -> str:
        """``server:default``, ``client:127.0.0.1:5061`` (tls.list / tls.options show it)."""
        return f"{self.role}:{self.domain}"

    def get(self, key: str, default: object = None) -> object:
        return self.attrs.get(key, default)


def parse_domain(text: str, file: str, line: int) -> Domain:
    low = text.strip().lower()
    if low in ("default", "any"):
        return Domain(low)
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    try:
        ip = str(ipaddress.ip_address(host))
        port_no = int(port)
    except ValueError:
        raise ConfigError(f"bad TLS domain {text!r}: expected default, any or IP:PORT", file,
                          line) from None
    if not sep or not 0 < port_no < 65536:
        raise ConfigError(f"bad TLS domain {text!r}: port out of range", file, line)
    return Domain("addr", ip, port_no)


def convert(key: str, raw: str, file: str, line: int) -> object:
    """A value of attribute ``key`` from its text (quotes removed), checked."""
    kind = ATTRIBUTES[key]
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    if kind is bool:
        low = text.lower()
        if low in TRUE:
            return True
        if low in FALSE:
            return False
        raise ConfigError(f"{key}: expected yes or no, found {text!r}", file, line)
    if kind is int:
        try:
            return int(text, 0)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, found {text!r}", file, line) from None
    if key == "tls_method":
        check_method(text, file, line)
    elif key == "verify_client":
        check_verify_client(text, file, line)
    return text


def check_verify_client(text: str, file: str | None, line: int | None) -> None:
    if text.strip().lower() not in VERIFY_CLIENT:
        raise ConfigError(f"verify_client: expected off, on, optional or optional_no_ca, "
                          f"found {text!r}", file, line)


def check_method(text: str, file: str | None, line: int | None) -> None:
    low = text.strip().lower()
    if low in GONE_METHODS:
        raise ConfigError(f"tls_method {text}: not offered by OpenSSL 3 (use TLSv1.2+)", file,
                          line)
    if low not in METHODS:
        known = ", ".join(["TLSv1", "TLSv1+", "TLSv1.1", "TLSv1.1+", "TLSv1.2", "TLSv1.2+",
                           "SSLv23"])
        raise ConfigError(f"unknown tls_method {text!r} (known: {known})", file, line)


def parse_text(text: str, file: str) -> list[Profile]:
    """Every profile of one tls.cfg text, in order."""
    profiles: list[Profile] = []
    current: Profile | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        section = _SECTION.match(line)
        if section is not None:
            current = Profile(section.group(1).lower(),
                              parse_domain(section.group(2), file, lineno), file=file,
                              line=lineno)
            profiles.append(current)
            continue
        if line.startswith("["):
            raise ConfigError(f"bad profile header {line!r}: expected [server:DOMAIN] or "
                              "[client:DOMAIN]", file, lineno)
        name, eq, value = line.partition("=")
        if not eq:
            raise ConfigError(f"expected name = value, found {line!r}", file, lineno)
        key = name.strip().lower()
        key = ALIASES.get(key, key)
        if key not in ATTRIBUTES:
            raise ConfigError(f"unknown TLS profile attribute {name.strip()!r} (known: "
                              f"method, {', '.join(sorted(k for k in ATTRIBUTES))})", file,
                              lineno)
        if current is None:
            raise ConfigError(f"{name.strip()} set before any [server:...] or [client:...] "
                              "section", file, lineno)
        current.attrs[key] = convert(key, value, file, lineno)
    return profiles


def check_profiles(profiles: Iterable[Profile]) -> None:
    """Kamailio's rules: one default per role; profiles sharing a domain (and every ``any``
    one) are told apart by server_name (or server_id for clients)."""
    seen: dict[tuple[str, Domain], list[Profile]] = {}
    for prof in profiles:
        seen.setdefault((prof.role, prof.domain), []).append(prof)
    for (role, domain), same in seen.items():
        if domain.kind == "default" and len(same) > 1:
            raise ConfigError(f"[{role}:default] defined twice (first at line {same[0].line})",
                              same[1].file, same[1].line)
        if domain.kind == "default":
            continue
        needs_name = domain.kind == "any" or len(same) > 1
        for prof in same:
            if needs_name and not (prof.get("server_name") or prof.get("server_id")):
                what = "an 'any' profile" if domain.kind == "any" else "profiles sharing a domain"
                raise ConfigError(f"[{prof.name}]: {what} must set server_name", prof.file,
                                  prof.line)


@attrs.define
class ProfileSet:
    """The profiles in force: the tls.cfg ones completed with the module parameters, a
    default per role always present."""

    server: list[Profile]
    client: list[Profile]

    @property
    def all(self) -> list[Profile]:
        return self.server + self.client

    def server_default(self) -> Profile:
        return next(p for p in self.server if p.domain.kind == "default")

    def client_default(self) -> Profile:
        return next(p for p in self.client if p.domain.kind == "default")


def complete(profiles: list[Profile], defaults: dict[str, object]) -> ProfileSet:
    """Fill what each profile leaves unset from ``defaults`` (the module parameters) and add
    the default profiles that are missing."""
    check_profiles(profiles)
    out: dict[str, list[Profile]] = {"server": [], "client": []}
    for prof in profiles:
        merged = {**{k: v for k, v in defaults.items() if v is not None}, **prof.attrs}
        out[prof.role].append(Profile(prof.role, prof.domain, merged, prof.file, prof.line))
    for role in ("server", "client"):
        if not any(p.domain.kind == "default" for p in out[role]):
            made = {k: v for k, v in defaults.items() if v is not None}
            out[role].append(Profile(role, Domain("default"), made))
    return ProfileSet(out["server"], out["client"])


def sni_matches(pattern: str, mode: int, name: str) -> bool:
    """server_name_mode: 0 the name only, 1 the name and its subdomains, 2 subdomains only."""
    pattern = pattern.lower().rstrip(".")
    name = name.lower().rstrip(".")
    sub = name.endswith("." + pattern)
    if mode == 1:
        return name == pattern or sub
    if mode == 2:
        return sub
    return name == pattern
