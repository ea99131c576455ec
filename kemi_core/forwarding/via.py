"""The Via headers of what we forward: ours on top, and ;received/;rport on the sender's.

* ``our_via(ctx, proto, branch)``: the Via this server puts on a request it sends on (a
  stateless forward, a tm branch), naming the socket it leaves from (``targets.send_local``'s:
  forced, the one it came in on, the transport's default), as its listen advertises it, or what
  ``set_advertised_address``/``_port`` asked for, with ``;rport`` after ``add_local_rport``:
  Kamailio's Via, whatever the number of workers (the branch names the worker:
  ``branch_rank``).
* ``received_via(ctx, msg)``: the sender's top Via with ``;received`` (RFC 3261 18.2.1) and
  ``;rport=`` (RFC 3581) filled in from where the request came from; ``apply_via`` puts it on a
  copy.
* ``stateless_branch(msg)``: a branch that is the same for a request's retransmissions (RFC 3261
  16.11), so a stateless proxy's downstream transactions match them.
"""

from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING

try:
    # CPython's own MD5 (the same digests): for a few dozen bytes it takes about a third of the
    # time of hashlib.md5, OpenSSL's, whose context setup dominates (one per stateless forward).
    from _md5 import md5 as _md5
except ImportError:  # (a Python built without it)
    _md5 = hashlib.md5

from kemi_core.forwarding.targets import LISTEN_OF
from kemi_core.sip.errors import SipParseError
from kemi_core.sip.syntax import via_received
from kemi_core.sip.values import port_value
from kemi_core.sip.via_stamp import forwarded_via

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext
    from kemi_core.runtime.core import Core
    from kemi_core.sip.message import SipMsg

MAGIC_COOKIE = "z9hG4bK"
#: what a lazy-parse accessor may raise on a malformed part
_PARSE_ERRORS = (SipParseError, AttributeError, ValueError, TypeError, IndexError, KeyError)


def via_sent_by(ctx: MsgContext, proto: str, local: tuple[str, int] | None = None) -> str:
    """host:port our Via names for ``proto``: the socket the request leaves from (``local``:
    ``targets.send_local``'s; else the first listen of ``proto``) as its listen
    advertises it
    (``listen=... advertise host:port``), or what set_advertised_address/_port asked for."""
    core = ctx.core
    if local is not None:
        host, port = local
    else:
        transport = core.transport  # (its address asked straight: a call less per branch)
        host, port = (core.local_address(proto) if transport is None
                      else transport.local_address(proto))
    adv = core.advertised  # None unless some listen advertises (behind NAT, usually)
    if adv is not None:
        host, port = _advertised(adv, proto, host, port)
    extra = ctx.extra
    if extra:
        host = str(extra.get("advertised_address") or host)
        port = int(extra.get("advertised_port") or port)
    return _sent_by(host, port)


#: (listen socket -> the host:port it advertises, listen host -> the host it advertises):
#: a Via names a listen socket by its advertised address, another socket of a listen host by
#: its host's advertised host and its own port
Advertised = tuple[dict[tuple[str, str, int], tuple[str, int]], dict[tuple[str, str], str]]


def advertised_sockets(core: Core) -> Advertised | None:
    """The listen sockets' advertised addresses, None when none advertises (``Core.advertised``
    keeps them, read on every Via: made when a transport is attached, the listens settled)."""
    exact: dict[tuple[str, str, int], tuple[str, int]] = {}
    by_host: dict[tuple[str, str], str] = {}
    listens = core.config.listen
    if not any(lst.advertise_host for lst in listens):
        return None  # the usual server: nothing to look up per Via
    for lst in listens:  # every listen socket, advertising or not
        if lst.advertise_host:
            exact[(lst.proto, lst.host, lst.port)] = (lst.advertise_host,
                                                     lst.advertise_port or lst.port)
            by_host.setdefault((lst.proto, lst.host), lst.advertise_host)
        else:
            exact[(lst.proto, lst.host, lst.port)] = (lst.host, lst.port)
    return exact, by_host


def _advertised(adv: Advertised, proto: str, host: str, port: int) -> tuple[str, int]:
    exact, by_host = adv
    listen_proto = LISTEN_OF.get(proto, proto)
    found = exact.get((listen_proto, host, port))
    if found is not None:
        return found
    return by_host.get((listen_proto, host), host), port


@functools.lru_cache(maxsize=64)
def _sent_by(host: str, port: int) -> str:
    """host:port as a Via names it (an IPv6 address in brackets)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def via_params(ctx: MsgContext) -> str:
    """Parameters our Via carries besides the branch: ``;rport`` after add_local_rport."""
    return ";rport" if ctx.extra and ctx.extra.get("add_local_rport") else ""


def our_via(ctx: MsgContext, proto: str, branch: str,
            local: tuple[str, int] | None = None) -> str:
    """The value of the Via we put on a request sent on over ``proto`` (from ``local``, a
    forced socket, when given)."""
    return (f"SIP/2.0/{proto.upper()} {via_sent_by(ctx, proto, local)};branch={branch}"
            f"{via_params(ctx)}")


def received_via(ctx: MsgContext, msg: SipMsg) -> str | None:
    """The top Via of ``msg`` with ;received (RFC 3261 18.2.1) and ;rport= (RFC 3581, or
    force_rport) where Kamailio writes them (``sip.via_stamp.forwarded_via``), or None when it
    needs neither. Computed once per request and applied to each copy sent on
    (``apply_via``)."""
    try:
        via = msg.via
    except _PARSE_ERRORS:
        return None
    rport = via.params.get("rport")
    if rport is not None:
        port_value(rport)  # (as via.rport: a value that is no port is a 400)
    rcv = ctx.rcv
    return forwarded_via(via.raw, via.host, rcv.src_ip, rcv.src_port, bool(ctx.force_rport))


#: (the function above is the pure form)
received_via_py = received_via
if via_received is not None:
    # Compiled (_fast.c): the usual request's answer without a Python call (tm reads it for
    # every request it relays, the stateless forward for each it sends on); else the above.
    received_via = via_received(received_via_py)


def apply_via(msg: SipMsg, raw: str | None) -> None:
    """Replace the top Via of ``msg`` by ``raw`` (from ``received_via``; None: unchanged)."""
    if raw is not None:
        msg.replace_top_via(raw)


def stamp_received(ctx: MsgContext, msg: SipMsg, source: SipMsg | None = None) -> None:
    """Add ;received and ;rport= to the top Via of ``msg`` before it is sent on (see
    ``received_via``); ``source``: the message ``msg`` was just copied from, whose Via is
    parsed already."""
    apply_via(msg, received_via(ctx, source if source is not None else msg))


def stateless_branch(msg: SipMsg) -> str:
    """A branch that is the same for retransmissions (and for a CANCEL of the INVITE), but
    different for different requests (RFC 3261 16.11)."""
    try:
        via = msg.via
    except _PARSE_ERRORS:
        via = None
    top_branch = via.branch if via is not None else None
    if top_branch and top_branch.startswith(MAGIC_COOKIE):
        seed = f"{top_branch}|{via.host}|{via.port}"  # type: ignore[union-attr]
    else:
        seed = "|".join(str(x) for x in (
            _safe(lambda: msg.to.tag), _safe(lambda: msg.from_.tag), _safe(lambda: msg.call_id),
            msg.ruri, via.raw if via is not None else "", _safe(lambda: msg.cseq.number)))
    return MAGIC_COOKIE + _md5(seed.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _safe(read: object) -> object:
    try:
        return read()  # type: ignore[operator]
    except _PARSE_ERRORS:
        return ""
