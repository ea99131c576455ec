"""The per-message context every KEMI function receives first (Kamailio's ``sip_msg_t``).

``SipMsg`` (kemi_core.sip) is pure SIP: bytes, headers, edits. What Kamailio keeps beside the
message while routing it (where it came from, $du, flags, added branches, AVPs, whether it was
replied to) lives here, so the SIP layer stays sans-IO.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

import attrs

from kemi_core.sip.syntax import PURE_PYTHON

# RecvInfo is made by the transport that received the message; routes read it from here too.
from kemi_core.transport.receiver import RecvInfo

if TYPE_CHECKING:
    from kemi_core.runtime.core import Core
    from kemi_core.sip.message import SipMsg

__all__ = ["Branch", "MsgContext", "RecvInfo", "RouteType"]


class RouteType(enum.IntFlag):
    """Which kind of route is running (Kamailio's route types; KSR.route_type / tmx tests)."""

    REQUEST = 1
    FAILURE = 2
    TM_ONREPLY = 4
    BRANCH = 8
    ONSEND = 16
    ERROR = 32
    LOCAL = 64
    CORE_ONREPLY = 128  # reply_route / ksr_reply_route
    BRANCH_FAILURE = 256
    EVENT = 512


@attrs.define(slots=True)
class Branch:
    """An extra destination added with append_branch (Kamailio's branch set entry)."""

    uri: str
    dst_uri: str | None = None
    path: str | None = None
    q: int = -1  # -1: no q value
    flags: int = 0
    send_socket: str | None = None
    instance: str | None = None
    ruid: str | None = None
    location_ua: str | None = None  # the User-Agent of a registered contact (lookup)


@attrs.define(slots=True, eq=False)
class MsgContext:
    """One message being routed, with the state scripts read and change."""

    msg: SipMsg
    rcv: RecvInfo
    core: Core
    route_type: RouteType = RouteType.REQUEST
    #: $du: where to send the request instead of the R-URI.
    dst_uri: str | None = None
    #: message flags (setflag/isflagset), 32 bits.
    flags: int = 0
    #: branch flags of branch 0 (setbflag on index 0).
    bflags: int = 0
    #: extra branches (append_branch), branch 0 is the R-URI itself.
    branches: list[Branch] = attrs.Factory(list)
    #: $avp(name) values, newest first.
    avps: dict[str, list[Any]] = attrs.Factory(dict)
    #: $xavp(name) lists of dicts, newest first.
    xavps: dict[str, list[dict[str, Any]]] = attrs.Factory(dict)
    #: force_rport() was called: reply to the source port (RFC 3581) even without ;rport.
    force_rport: bool = False
    #: force_send_socket(), "proto:ip:port".
    send_socket: str | None = None
    #: A reply was sent for this request (stateless or stateful).
    replied: bool = False
    #: drop()/set_drop(): do not send this message on (onsend, reply routes).
    dropped: bool = False
    #: A script error in a route run for this message (``file:line: reason``), set by the
    #: core (``core.run_route``); a request gets a 500 when nothing was sent.
    fault: str | None = None
    #: Request-URI as received ($ou), kept while the R-URI is rewritten.
    orig_ruri: str | None = None
    #: Module-owned state, by module name (tm keeps its transaction here, xlog nothing, ...).
    mod_state: dict[str, Any] = attrs.Factory(dict)
    #: Free-form key/values for engines and modules (e.g. the reply being sent in onsend).
    extra: dict[str, Any] = attrs.Factory(dict)


_new_context = object.__new__


def message_context_py(msg: SipMsg, rcv: RecvInfo, core: Core,
                    route_type: RouteType = RouteType.REQUEST,
                    orig_ruri: str | None = None) -> MsgContext:
    """``MsgContext(msg, rcv, core, route_type, orig_ruri=orig_ruri)``, every other field at its
    default, made without the generated ``__init__`` (keyword arguments, a test and a factory
    call per container): every message received gets one. tests/unit/test_context.py checks that it
    equals the class's own construction, field by field."""
    ctx: MsgContext = _new_context(MsgContext)
    ctx.msg = msg
    ctx.rcv = rcv
    ctx.core = core
    ctx.route_type = route_type
    ctx.dst_uri = None
    ctx.flags = 0
    ctx.bflags = 0
    ctx.branches = []
    ctx.avps = {}
    ctx.xavps = {}
    ctx.force_rport = False
    ctx.send_socket = None
    ctx.replied = False
    ctx.dropped = False
    ctx.fault = None
    ctx.orig_ruri = orig_ruri
    ctx.mod_state = {}
    ctx.extra = {}
    return ctx


#: the positional arguments of message_context, in order
_PARAMS = ("msg", "rcv", "core", "route_type", "orig_ruri")
#: a field's default as context_maker takes it: the value itself, a fresh list, a fresh dict,
#: another factory called, or none (the field must be given)
_AS_IS, _NEW_LIST, _NEW_DICT, _FACTORY, _REQUIRED = range(5)


def _field_defaults(cls: type) -> tuple[tuple[str, int, Any], ...]:
    """(name, kind, default) of each field of an attrs class, for context_maker."""
    out = []
    for field in attrs.fields(cls):
        default = field.default
        if default is attrs.NOTHING:
            out.append((field.name, _REQUIRED, None))
        elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            factory = default.factory
            kind = _NEW_LIST if factory is list else _NEW_DICT if factory is dict else _FACTORY
            out.append((field.name, kind, factory))
        else:
            out.append((field.name, _AS_IS, default))
    return tuple(out)


def _compiled_maker() -> Any:
    """message_context compiled (kemi_core/sip/_fast.c), None without it: the defaults are
    read from the class's own fields, so a field added to MsgContext is made there too."""
    if PURE_PYTHON:
        return None
    try:
        from kemi_core.sip._fast import context_maker  # type: ignore[attr-defined]
    except ImportError:
        return None
    fields = _field_defaults(MsgContext)
    names = [name for name, _, _ in fields]
    # (route_type and orig_ruri default to the class's own defaults when not given)
    return context_maker(MsgContext, fields, tuple(names.index(p) for p in _PARAMS))


if TYPE_CHECKING:
    message_context = message_context_py
else:
    message_context = _compiled_maker() or message_context_py
