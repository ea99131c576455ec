"""Requests this server sends itself, statefully: KSR.tm.t_uac_send, KSR.tm.t_replicate and
the tm.t_uac_start RPC.

``LocalUac`` drives one sans-IO client transaction per request (retransmissions, timeouts,
the ACK of a negative final); the final outcome is logged, replies go nowhere else (Kamailio's
t_uac_start and t_replicate do not pass them on either).

Where it runs: in a worker, through the worker's own socket (replies come back to it, as its
Via says). With several listens, which one a request leaves from and its Via names is Kamailio
5.6's choice (learnt by running it, three UDP listens): the ``socket`` given, else, as for a
relayed request, the UDP socket the request being routed came in on, else the transport's
default socket (``kemi_core.forwarding.send_local``). The RPC has no request in hand: the
socket given, else the default one (``default_local``). It runs in the main process, which
has no SIP socket when workers are forked: there it sends from the listen socket itself
(``core.main_sip``) with the main process's branch mark, and the worker a reply reaches hands
it over when no transaction of its own takes it (``core.main_handoff``); the main process
drives the transaction from its event loop. With fork=no the one process does both.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kemi_core.api import (
    MAIN_BRANCH,
    Clock,
    KemiExport,
    default_local,
    drive_with_loop,
    export,
    forced_local,
    send_local,
    uri_destination,
)
from kemi_core.sip import SipParseError, parse_datagram
from kemi_tm.actions import Dest
from kemi_tm.client import ClientTransaction, new_client_transaction
from kemi_tm.idents import local_branch
from kemi_tm.service import TmService
from kemi_tm.state import MODULE, req_state

if TYPE_CHECKING:
    from kemi_core.api import Core, MsgContext, Timer
    from kemi_core.sip import SipMsg
    from kemi_tm.timers import TimerSettings

log = logging.getLogger("kemi.tm")

_MAX_LOCAL = 10_000  # bound on concurrent local transactions per process


class LocalUac:
    """Local client transactions, each with a timer on ``clock`` at its next deadline; the
    sink their machines send through (a send that fails ends the transaction as a 503)."""

    def __init__(self, send: Callable[[Dest, bytes], bool],
                 local_address: Callable[[str], tuple[str, int]], clock: Clock,
                 settings: Callable[[], TimerSettings], on_done: Callable[[int], None] | None = None,
                 branch: Callable[[], str] = local_branch) -> None:
        self._send = send
        self._local_address = local_address
        self._clock = clock
        self._now = clock.now
        self._settings = settings
        self._branch = branch
        self.on_done = on_done
        self.clients: dict[tuple[str, str], ClientTransaction] = {}
        self._timers: dict[tuple[str, str], Timer] = {}
        self.outcomes: list[tuple[str, int]] = []  # (method, status), last 100
        #: a send of the machine being driven failed (``_after`` handles it)
        self._send_failed = False

    def __len__(self) -> int:
        return len(self.clients)

    def via_for(self, dest: Dest) -> str:
        """A Via value naming the socket ``dest`` leaves from (this process's usual one when
        it names none), with a new branch."""
        host, port = dest.local or self._local_address(dest.proto)
        return f"SIP/2.0/{dest.proto.upper()} {host}:{port};branch={self._branch()}"

    def start(self, request: SipMsg, dest: Dest, *, add_via: bool = True) -> bool:
        """Send ``request`` statefully to ``dest``, with our Via on top unless it has it."""
        if len(self.clients) >= _MAX_LOCAL:
            log.error("tm: too many local transactions (%d)", len(self.clients))
            return False
        if add_via:
            request.prepend_via(self.via_for(dest))
        client = new_client_transaction(request, dest, self._settings(), sink=self)
        self.clients[client.key] = client
        client.start(self._now())
        self._after(client)
        return True

    def on_reply(self, reply: SipMsg) -> bool:
        try:
            key = (reply.via.branch or "", reply.cseq.method)
        except SipParseError:
            return False
        client = self.clients.get(key)
        if client is None:
            return False
        final = reply.status if client.on_response(reply, self._now()) else 0
        self._after(client, final if final >= 200 else 0)
        return True

    def _on_timer(self, client: ClientTransaction) -> None:
        self._timers.pop(client.key, None)
        if not client.terminated:
            self._after(client, client.on_timer(self._now()))

    def send(self, dest: Dest, data: bytes, origin: str = "") -> bool:
        """The machines' sink."""
        if self._send(dest, data):
            return True
        self._send_failed = True
        return False

    def _after(self, client: ClientTransaction, final: int = 0) -> None:
        """After an input of ``client``: its outcome ``final`` (a final reply's or a local
        final's status, 0: none) is recorded, unless a send failed: then the transport error
        is the outcome (16.9)."""
        if self._send_failed:
            self._send_failed = False
            final = client.on_transport_error(self._now())
        if final:
            self._record(client.request.method, final)
        self._rearm(client)

    def _rearm(self, client: ClientTransaction) -> None:
        """Keep one clock timer at the client's next deadline; forget it once terminated."""
        key = client.key
        timer = self._timers.pop(key, None)
        at = None if client.terminated else client.next_timer()
        if timer is not None:
            if timer.when == at:
                self._timers[key] = timer
                return
            timer.cancel()
        if client.terminated:
            self.clients.pop(key, None)
        elif at is not None:
            self._timers[key] = self._clock.call_at(at, self._on_timer, client)

    def _record(self, method: str, status: int) -> None:
        log.info("tm: local %s request got %d", method, status)
        self.outcomes = [*self.outcomes[-99:], (method, status)]
        if self.on_done is not None:
            self.on_done(status)


# ---- building requests -------------------------------------------------------------------
def build_request(method: str, ruri: str, headers: str, body: str, via: str) -> SipMsg:
    """A new request with Via ``via``; From/To/Call-ID/CSeq/Max-Forwards are added when
    ``headers`` lacks them."""
    lines = [h for h in headers.replace("\r\n", "\n").split("\n") if h.strip()]
    lines = [line for line in lines if line.split(":", 1)[0].strip().lower() not in ("via", "v")]
    lines.insert(0, f"Via: {via}")
    names = {h.split(":", 1)[0].strip().lower() for h in lines}
    if "from" not in names and "f" not in names:
        lines.append(f"From: <sip:kemi@localhost>;tag={secrets.token_hex(6)}")
    if "to" not in names and "t" not in names:
        lines.append(f"To: <{ruri}>")
    if "call-id" not in names and "i" not in names:
        lines.append(f"Call-ID: {secrets.token_hex(12)}@kemi")
    if "cseq" not in names:
        lines.append(f"CSeq: 1 {method}")
    if "max-forwards" not in names:
        lines.append("Max-Forwards: 70")
    lines = [line for line in lines if not line.lower().startswith("content-length")]
    lines.append(f"Content-Length: {len(body.encode())}")
    text = f"{method} {ruri} SIP/2.0\r\n" + "\r\n".join(lines) + "\r\n\r\n" + body
    return parse_datagram(text.encode())


def _dest(uri: str) -> Dest | None:
    try:
        found = uri_destination(uri)
    except (SipParseError, ValueError):
        return None
    return Dest(*found) if found is not None else None


# ---- KEMI --------------------------------------------------------------------------------
def worker_uac(svc: TmService) -> LocalUac:
    """The worker's LocalUac (sends from the worker's own socket; replies come back to it)."""
    uac = svc.uac
    if not isinstance(uac, LocalUac):
        core = svc.core
        uac = LocalUac(lambda d, data: core.send(d.proto, d.host, d.port, data, d.local),
                       core.local_address, svc.clock, lambda: svc.settings.timers)
        svc.uac = uac
    return uac


def _from_socket(ctx: MsgContext, dest: Dest, socket: str = "") -> Dest:
    """``dest`` with the socket it leaves from (``socket``, a listen socket as
    "proto:host:port", when given; else as a relayed request, ``send_local``)."""
    core = ctx.core
    local = (forced_local(core, dest.proto, socket) if socket
             else send_local(ctx, dest.proto, ctx.send_socket, dest.host))
    return dest if local is None else Dest(dest.proto, dest.host, dest.port, local)


def t_uac_send(ctx: MsgContext, method: str, ruri: str, nexthop: str, socket: str,
               headers: str, body: str) -> int:
    """Send a new request statefully from this worker (``nexthop`` or the R-URI is where it goes;
    ``socket``, when given, the listen socket it leaves from: see the module's docstring)."""
    svc = ctx.core.require("tm", TmService)
    dest = _dest(nexthop or ruri)
    if dest is None:
        log.error("t_uac_send: bad destination %r", nexthop or ruri)
        return -1
    dest = _from_socket(ctx, dest, socket)
    local = worker_uac(svc)
    try:
        request = build_request(method.upper(), ruri, headers, body, local.via_for(dest))
    except SipParseError as exc:
        log.error("t_uac_send: cannot build the request: %s", exc.reason)
        return -1
    if not local.start(request, dest, add_via=False):
        return -1
    svc.stats.incr("uac")
    return 1


def t_replicate(ctx: MsgContext, uri: str) -> int:
    """Send a copy of the request statefully to ``uri``; its replies are absorbed."""
    if not ctx.msg.is_request or ctx.msg.method in ("ACK", "CANCEL"):
        log.error("t_replicate: not for this message")
        return -1
    dest = _dest(uri)
    if dest is None:
        log.error("t_replicate: bad destination %r", uri)
        return -1
    req_state(ctx)
    dest = _from_socket(ctx, dest)
    return 1 if worker_uac(ctx.core.require("tm", TmService)).start(ctx.msg.copy(), dest) else -1


def exports() -> list[KemiExport]:
    return [
        export(MODULE, "t_uac_send", t_uac_send, "ssssss"),
        export(MODULE, "t_replicate", t_replicate, "s"),
    ]


# ---- RPC: tm.t_uac_start ---------------------------------------------------------------------
class MainProcessUac:
    """tm.t_uac_start in the main process of a forked server, which has no SIP transport: it
    sends from the listen sockets (``core.main_sip``) with the main process's branch mark,
    takes the replies workers hand over (``on_reply``) and runs the timers on a clock of its
    own on its loop."""

    def __init__(self, svc: TmService) -> None:
        self.svc = svc
        self.uac: LocalUac | None = None

    def _ensure(self, core: Core) -> LocalUac:
        if self.uac is not None:
            return self.uac
        loop, main = core.loop, core.main_sip
        if loop is None or main is None:
            raise RuntimeError("tm.t_uac_start: no event loop in this process")
        # The main process runs no module timers: this uac gets a clock of its own on its loop.
        clock = Clock()
        drive_with_loop(clock, loop)
        uac = LocalUac(lambda d, data: main.send(d.proto, d.host, d.port, data, d.local),
                       main.local_address, clock, lambda: self.svc.settings.timers,
                       branch=_main_branch)
        self.uac = uac
        return uac

    def on_reply(self, msg: SipMsg) -> bool:
        """A reply a worker handed over (``core.add_main_reply_handler``): True when one of
        this process's transactions took it."""
        return self.uac is not None and self.uac.on_reply(msg)

    def start(self, core: Core, method: str, ruri: str, nexthop: str, socket: str, headers: str,
              body: str) -> dict[str, Any]:
        dest = _dest(nexthop or ruri)
        if dest is None:
            raise ValueError(f"bad destination {nexthop or ruri!r}")
        local = (forced_local(core, dest.proto, socket) if socket
                 else default_local(core, dest.proto, ":" in dest.host))
        if local is not None:
            dest = Dest(dest.proto, dest.host, dest.port, local)
        # fork=no: this process has the SIP transport; else the main process's sends
        uac = worker_uac(self.svc) if core.transport is not None else self._ensure(core)
        request = build_request(method.upper(), ruri, headers, body, uac.via_for(dest))
        if not uac.start(request, dest, add_via=False):
            raise RuntimeError("the request could not be sent")
        self.svc.stats.incr("uac")
        return {"sent": True, "method": request.method, "call_id": request.call_id,
                "to": f"{dest.proto}:{dest.host}:{dest.port}"}


def _main_branch() -> str:
    """A branch for the main process's own transaction (its mark: workers hand the replies
    over)."""
    return f"{MAIN_BRANCH}{secrets.token_hex(8)}.l"
