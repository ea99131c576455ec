"""Next-hop names to addresses without blocking the worker, cached for a bounded time.

IP literals resolve at once and forever. A name is looked up off the event loop (the loop's
``getaddrinfo``, which runs the system resolver in a thread) and its answer is cached: found
addresses for ``ttl`` seconds (Kamailio's ``dns_cache_max_ttl``, default 300 s here since the
system resolver gives no TTL), failures for ``negative_ttl`` seconds (``dns_cache_negative_ttl``,
default 60 s as in Kamailio), so a name that failed once is asked again later instead of
failing for the life of the worker. A lookup that takes longer than ``timeout`` counts as a
failure. Several senders waiting for one name share one lookup.

    ip = RESOLVER.resolve(host, on_done)   # str: known now; None: known to fail; PENDING:
                                           # on_done(ip_or_None) comes later, from the loop
    ip = RESOLVER.known(host)              # literal or cached, never starts a lookup

Names in the hosts file (``localhost`` ...) are answered on the spot: reading a local file is no
network wait; so are names under the reserved ``invalid`` top-level domain (RFC 6761 6.4: never
resolves), so a t_relay to one fails at once as Kamailio's does. Without a running event loop (tests' in-process routers, ``kemi check``) a lookup
runs on the spot too. ``lookup`` replaces the system resolver (a test drives failure and recovery with it): it
is called as ``lookup(host, done)`` and must call ``done(ip_or_None)`` once, now or later.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any, Final

from kemi_core.transport.outbox import about_to_wait

log = logging.getLogger("kemi.dns")

Done = Callable[[str | None], object]
Lookup = Callable[[str, Done], None]

#: what ``resolve`` returns while a lookup is on its way
PENDING: Final = "pending"

#: cached names at most (literals are not counted: they cost no lookup)
MAX_NAMES = 4096

HOSTS_FILE = "/etc/hosts"


class Resolver:
    """Host name -> IP address with a bounded-TTL cache (see the module docstring)."""

    def __init__(self, now: Callable[[], float] = time.monotonic, lookup: Lookup | None = None,
                 ttl: float = 300.0, negative_ttl: float = 60.0, timeout: float = 5.0) -> None:
        self.now = now
        self.lookup: Lookup = lookup if lookup is not None else self._system_lookup
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.timeout = timeout
        #: the worker's event loop (set when it starts); None: look up on the spot
        self.loop: Any = None
        self._literals: dict[str, str | None] = {}  # text -> normalised address (None: a name)
        self._names: dict[str, tuple[str | None, float]] = {}  # name -> (ip or None, expiry)
        self._waiting: dict[str, list[Done]] = {}
        self.hosts = HostsFile(HOSTS_FILE)

    def literal(self, host: str) -> str | None:
        """``host`` as an IP address when it is one (brackets removed), else None."""
        known = self._literals.get(host, PENDING)
        if known is not PENDING:
            return known
        text = host.strip("[]")
        try:
            ip: str | None = str(ipaddress.ip_address(text))
        except ValueError:
            ip = None
        if len(self._literals) < MAX_NAMES:
            self._literals[host] = ip
        return ip

    def known(self, host: str) -> str | None:
        """The address of ``host`` if it is a literal or a fresh cache entry, else None (and
        no lookup starts)."""
        ip = self._literals.get(host, PENDING)  # (the usual hit without literal()'s call)
        if ip is PENDING:
            ip = self.literal(host)
        if ip is not None:
            return ip  # type: ignore[return-value]
        entry = self._names.get(host.lower())
        if entry is not None and entry[1] > self.now():
            return entry[0]
        return None

    def resolve(self, host: str, on_done: Done | None = None) -> str | None:
        """The address of ``host`` now (a str), None when it is known not to resolve, or
        PENDING: a lookup is under way and ``on_done(ip_or_None)`` will be called with its
        result (from the event loop). Without ``on_done`` a miss starts the lookup (the next
        call finds its answer) and returns None."""
        ip = self.literal(host)
        if ip is not None:
            return ip
        name = host.lower()
        entry = self._names.get(name)
        if entry is not None and entry[1] > self.now():
            return entry[0]
        waiting = self._waiting.get(name)
        if waiting is None:
            waiting = self._waiting[name] = []
            self.lookup(name, lambda found: self._answered(name, found))
            if name not in self._waiting:  # answered on the spot (no event loop)
                return self._names[name][0]
        if on_done is None:
            return None
        waiting.append(on_done)
        return PENDING

    def forget(self) -> None:
        """Drop every cached name (literals stay)."""
        self._names.clear()

    def _answered(self, name: str, ip: str | None) -> None:
        expiry = self.now() + (self.ttl if ip is not None else self.negative_ttl)
        if name not in self._names and len(self._names) >= MAX_NAMES:
            self._names.pop(next(iter(self._names)))  # the oldest entry makes room
        self._names[name] = (ip, expiry)
        if ip is None:
            log.warning("dns: %s does not resolve (asked again in %g s)", name,
                        self.negative_ttl)
        for done in self._waiting.pop(name, ()):
            try:
                done(ip)
            except Exception:
                log.exception("dns: handling the answer for %s failed", name)

    # ---- the system resolver ----------------------------------------------------------
    def _system_lookup(self, name: str, done: Done) -> None:
        if _never_resolves(name):
            done(None)
            return
        loop = self.loop
        if loop is None or not loop.is_running() or self.hosts.has(name):
            done(_first_address(_getaddrinfo_now(name)))
            return
        loop.create_task(self._lookup_in_thread(loop, name, done))

    async def _lookup_in_thread(self, loop: asyncio.AbstractEventLoop, name: str,
                                done: Done) -> None:
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(name, None, type=socket.SOCK_DGRAM),
                                           self.timeout)
        except (OSError, TimeoutError, UnicodeError):
            infos = []
        done(_first_address(infos))


class HostsFile:
    """The names a hosts file lists (read again when it changes)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._mtime = -1.0
        self._names: frozenset[str] = frozenset()

    def has(self, name: str) -> bool:
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            return False
        if mtime != self._mtime:
            self._mtime = mtime
            self._names = frozenset(_hosts_names(self.path))
        return name in self._names


def _hosts_names(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    return [name.lower() for line in lines for name in line.split("#", 1)[0].split()[1:]]


def _never_resolves(name: str) -> bool:
    """A name under the ``invalid`` top-level domain (RFC 6761 6.4)."""
    return name.rstrip(".").rsplit(".", 1)[-1] == "invalid"


def _getaddrinfo_now(name: str) -> list[Any]:
    about_to_wait()
    try:
        return socket.getaddrinfo(name, None, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return []


def _first_address(infos: list[Any]) -> str | None:
    """The first IPv4 address, else the first IPv6 one (Kamailio's default, dns_try_ipv6=0
    aside)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        for info in infos:
            if info[0] == family:
                return str(info[4][0])
    return None


#: This process's resolver (the cache is per process, like the transactions).
RESOLVER = Resolver()
