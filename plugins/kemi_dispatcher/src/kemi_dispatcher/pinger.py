"""The keepalives: one round every ``ds_ping_interval`` seconds, once for the whole server.

The rounds are the core's housekeeping (the main process's loop; a test router's clock). Each
keepalive is a small non-INVITE client transaction of its own (RFC 3261 17.1.2: retransmitted
from T1 doubling up to T2 over UDP, a local 408 when tm's ``fr_timer`` passes with no final
reply). It leaves from a listen socket, as Kamailio's: the destination's ``socket`` attribute,
else ``ds_default_socket``, else Kamailio's default UDP socket for the destination's address
family (``keepalive_socket``); our Via names it, so a peer that answers only the proxy's port
answers these too.

- a process that has the SIP transport (``fork=no``, a test router) sends through it and gets
  the replies through the core's reply handlers;
- the main process of a forked server sends from the listen sockets it keeps for the workers
  (``core.main_sip``); our branch starts with ``MAIN_BRANCH``, so the worker a reply reaches
  runs its reply route and hands it to the main process (``core.add_main_reply_handler``).

Results change the destinations' state in the shared store, so every worker sees them at its
next selection. A destination reached over TCP or TLS is probed over it, as Kamailio does, when
the server listens on that transport (a worker sends it, on a connection of its own); any
other, or one with no such listener, over UDP at the same address (logged once).
"""

from __future__ import annotations

import logging
import math
import secrets
from typing import TYPE_CHECKING, Protocol

import attrs

from kemi_core.api import MAIN_BRANCH, Core, MsgContext, default_local, forced_local
from kemi_core.sip import SipMsg, SipParseError, parse_uri
from kemi_dispatcher.destinations import Dest
from kemi_dispatcher.probing import accepted, after_probe, targets
from kemi_dispatcher.state import SetState, letters

if TYPE_CHECKING:
    from kemi_dispatcher.service import DsService

log = logging.getLogger("kemi.dispatcher")

BRANCH_PREFIX = f"{MAIN_BRANCH}ds"
#: the transports a keepalive may take besides UDP (as the destination's, given a listener)
PROBE_PROTOS = ("udp", "tcp", "tls")
T1, T2 = 0.5, 4.0
MAX_PENDING = 10_000  # bound on keepalives in flight


@attrs.define
class Ping:
    setid: int
    index: int
    gen: int
    uri: str
    proto: str
    target: tuple[str, int]
    local: tuple[str, int]
    data: bytes
    deadline: float
    next_retx: float
    retx_interval: float = T1


class Sender(Protocol):
    """What sends a keepalive: the core (its transport) or the main process's ``MainSip``."""

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool: ...


class Pinger:
    def __init__(self, svc: DsService) -> None:
        self.svc = svc
        self.core = svc.core
        self.pending: dict[str, Ping] = {}
        self._no_sender_logged = False
        self.next_round: float | None = None
        self._warned_tcp = False
        fr = 30000
        if "tm" in self.core.loaded_modules:
            try:
                fr = int(self.core.modparam("tm", "fr_timer"))
            except (KeyError, ValueError):
                pass
        self.timeout = max(fr, 100) / 1000.0

    def start(self) -> None:
        """Run the rounds as the core's housekeeping (once per server) and take the replies:
        handed to the main process (forked), through the core (fork=no, test routers)."""
        interval = self.svc.settings.ping_interval
        self.core.reply_handlers.insert(0, self._core_reply)
        self.core.add_main_reply_handler(self.on_reply)
        self.core.add_housekeeping(self.tick, interval)

    # ---- the loop ------------------------------------------------------------------------
    def tick(self) -> float:
        """Send what is due; returns the delay until the next thing to do."""
        now = self.core.clock.now()
        interval = float(self.svc.settings.ping_interval)
        if self.next_round is None or now >= self.next_round:
            self.round(now)
            self.next_round = now + interval
        due = self.next_round
        for branch, p in list(self.pending.items()):
            if now >= p.deadline:
                del self.pending[branch]
                self.finish(p, 408)
                continue
            if now >= p.next_retx:
                self._send(p)
                p.retx_interval = min(p.retx_interval * 2, T2)
                p.next_retx = now + p.retx_interval
            due = min(due, p.next_retx, p.deadline)
        return max(due - now, 0.01)

    def _sender(self) -> Sender | None:
        """The process's transport (fork=no, a test router), else the main process's sends
        from the listen sockets (forked)."""
        core = self.core
        if core.transport is not None:
            return core
        if core.main_sip is None and not self._no_sender_logged:
            self._no_sender_logged = True
            log.error("dispatcher: no socket to send keepalives from in this process")
        return core.main_sip

    def round(self, now: float) -> None:
        state = self.svc.state
        if not state.ping_active:
            return
        dslist = state.current()
        states = {s: st for s in dslist.sets if (st := state.set_state(s)) is not None}
        if self._sender() is None:
            return
        for setid, i, dest in targets(dslist, states, self.svc.settings.probing_mode):
            if len(self.pending) >= MAX_PENDING:
                log.error("dispatcher: %d keepalives in flight: round cut short", MAX_PENDING)
                return
            self._start(setid, i, states[setid].gen, dest, now)

    def _start(self, setid: int, index: int, gen: int, dest: Dest, now: float) -> None:
        s = self.svc.settings
        proto, host, port = dest.proto, dest.ip, dest.port
        if s.outbound_proxy or dest.obproxy:
            proxy = make_target(dest.obproxy or s.outbound_proxy)
            if proxy is not None:
                proto, host, port = proxy
        if not host:
            return
        if proto not in PROBE_PROTOS or not any(lst.proto == proto for lst in self.core.config.listen):
            if proto != "udp" and not self._warned_tcp:
                self._warned_tcp = True
                log.warning("dispatcher: keepalives to %s go over UDP (no %s listen socket)",
                            dest.uri, proto)
            proto = "udp"
        branch = f"{BRANCH_PREFIX}{secrets.token_hex(8)}"
        local = keepalive_socket(self.core, host, dest.socket or s.default_socket, proto)
        data = build_ping(s.ping_method, dest.uri, dest.ping_from or s.ping_from, branch,
                          proto, local[0].strip("[]"), local[1])
        # over a stream the transport delivers it: no retransmission (RFC 3261 17.1.2.2)
        retx = now + T1 if proto == "udp" else math.inf
        ping = Ping(setid, index, gen, dest.uri, proto, (host, port), local, data,
                    now + self.timeout, retx)
        self.pending[branch] = ping
        self._send(ping)

    def _send(self, p: Ping) -> None:
        sender = self._sender()
        if sender is not None:
            sender.send(p.proto, p.target[0], p.target[1], p.data, p.local)

    # ---- replies -------------------------------------------------------------------------
    def _core_reply(self, ctx: MsgContext) -> bool:
        return self.on_reply(ctx.msg)

    def on_reply(self, msg: SipMsg) -> bool:
        """A reply to one of our keepalives (True: consumed)."""
        try:
            branch = msg.via.branch or ""
        except SipParseError:
            return False
        if not branch.startswith(BRANCH_PREFIX):
            return False
        ping = self.pending.get(branch)
        if ping is None:
            return True  # a late retransmission of a reply: ours, nothing to do
        if msg.status >= 200:
            del self.pending[branch]
            self.finish(ping, msg.status)
        return True

    def finish(self, p: Ping, status: int) -> None:
        s = self.svc.settings
        ok = accepted(status, s.ping_reply_codes)
        before: list[int] = []

        def change(st: SetState) -> SetState:
            if st.gen != p.gen or p.index >= len(st.flags):
                return st  # the list was reloaded meanwhile
            before.append(st.flags[p.index])
            return after_probe(st, p.index, ok, s.probing_mode, s.probing_threshold,
                               s.inactive_threshold)

        st = self.svc.state.update_set(p.setid, change)
        if st is None or not before:
            return
        old, new = letters(before[0]), letters(st.flags[p.index])
        if old[0] != new[0]:
            log.info("dispatcher: destination %s of set %d %s (%s -> %s, keepalive %d)",
                     p.uri, p.setid, "up" if new[0] == "A" else "down", old, new, status)


def keepalive_socket(core: Core, host: str, forced: str, proto: str = "udp") -> tuple[str, int]:
    """The listen socket a keepalive to ``host`` over ``proto`` leaves from (over TCP or TLS:
    the one its Via names), as Kamailio 5.6 sends it: ``forced`` (the destination's ``socket``
    attribute, else ``ds_default_socket``) when it is a listen socket of ``proto``; else
    Kamailio's default socket for ``host``'s address family (``default_local``); else the
    first listen socket of ``proto``."""
    if forced:
        local = forced_local(core, proto, forced)
        if local is not None:
            return local
    local = default_local(core, proto, ":" in host)
    if local is not None:
        return local
    listens = [(lst.host, lst.port) for lst in core.config.listen if lst.proto == proto]
    return listens[0] if listens else core.local_address(proto)


def make_target(uri: str) -> tuple[str, str, int] | None:
    from kemi_core.api import uri_destination

    try:
        parse_uri(uri)
        return uri_destination(uri)
    except (SipParseError, ValueError):
        log.error("dispatcher: bad outbound proxy %r", uri)
        return None


def build_ping(method: str, uri: str, from_uri: str, branch: str, proto: str, host: str,
               port: int) -> bytes:
    """A keepalive request, as Kamailio's: To the destination, From ``ds_ping_from``."""
    tag = secrets.token_hex(8)
    callid = f"{secrets.token_hex(8)}-ds@{host}"
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/{proto.upper()} {hostport};branch={branch}\r\n"
            f"To: <{uri}>\r\n"
            f"From: <{from_uri}>;tag={tag}\r\n"
            f"CSeq: 10 {method}\r\n"
            f"Call-ID: {callid}\r\n"
            "Max-Forwards: 70\r\n"
            "Content-Length: 0\r\n"
            "User-Agent: kemi\r\n\r\n").encode()
