"""Per-message dispatch in a worker: run the script's route, forward replies.

The dispatcher is the transports' Receiver (kemi_core.transport.receiver): it gets parsed
messages, or parse errors with the bytes that failed.

Everything a message does happens inside a guard: a parse error gets its 400 (where the
request's Via can be read) or is dropped, and a script error is logged and answered with a 500
when nothing was sent; the worker always goes on.
"""

from __future__ import annotations

import logging
import re
from array import array
from collections.abc import Callable
from time import monotonic
from typing import Any

from kemi_core.forwarding import forward_reply
from kemi_core.runtime.context import MsgContext, RecvInfo, RouteType, message_context
from kemi_core.runtime.core import Core
from kemi_core.runtime.logs import LOG_CONTEXT
from kemi_core.runtime.ratelimit import RateLimitedLog, brief_error
from kemi_core.runtime.request_gate import check_request_headers
from kemi_core.runtime.routes import route_raised, run_route
from kemi_core.sip import ParseLimits, SipMsg, SipParseError, build_reply, parse_uri, reply_top_via
from kemi_core.sip.syntax import PURE_PYTHON
from kemi_core.stats import CoreStats
from kemi_core.transport.receiver import deliver_datagram

try:
    if PURE_PYTHON:
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import request_dispatcher
except ImportError:  # not built: on_message below for every message
    request_dispatcher = None

REQUEST, CORE_ONREPLY = RouteType.REQUEST, RouteType.CORE_ONREPLY

log = logging.getLogger("kemi.dispatch")


class Dispatcher:
    """Routes each received message through the active engine."""

    def __init__(self, core: Core, limits: ParseLimits) -> None:
        self.core = core
        self.limits = limits
        cbs = core.config.kemi_callbacks
        self.request_cb = cbs.get("request_route_callback") or "ksr_request_route"
        self.reply_cb = cbs.get("reply_route_callback") or "ksr_reply_route"
        if core.stats is None:  # a core built without the core commands (some unit tests)
            core.stats = CoreStats(core)
        self.stats = stats = core.stats
        #: the counters a message received increments, read by on_message itself (CoreStats)
        self._by_method = stats.request_by_method
        self._unsupported = stats.unsupported_methods
        self._reply_counters = stats.reply_counters
        #: the compiled log_prefix format (None: no prefix configured)
        self.log_prefix = LOG_CONTEXT.prefix_format = _prefix_format(core, core.config.log_prefix)
        #: complaints about bad input: one line per kind per second at most
        self.limited = RateLimitedLog(log)
        # The worker's entry gate (kemi_core.runtime.drain.EntryGate.receiver sets these): the
        # watchdog's busy-since cell of this worker, written around each message, and while
        # the worker drains, ``refuse`` answers new requests instead of routing them.
        self._busy: Any = array("d", [0.0])
        self._busy_at = 0
        self._draining: list[bool] = [False]
        self._refuse: Callable[[SipMsg, RecvInfo], bool] = _route_all
        #: several workers: hands a reply to the worker whose rank its branch names, True when
        #: it did (``WorkerEndpoints.steer_reply``); None with one worker
        self.steer: Callable[[SipMsg, RecvInfo], bool] | None = None
        # the usual request's way to its route, and a reply's to its handlers, in one compiled
        # call (on_message below is the reference and takes every other message); not for a
        # subclass with its own
        if request_dispatcher is not None and type(self).on_message is Dispatcher.on_message:
            self.__dict__["on_message"] = request_dispatcher(
                self, Dispatcher.on_message.__get__(self), globals())

    def entry_gate(self, busy: Any, index: int, draining: list[bool],
                   refuse: Callable[[SipMsg, RecvInfo], bool]) -> None:
        """Mark this worker busy in ``busy[index]`` while a message is handled; while
        ``draining[0]``, messages ``refuse(msg, rcv)`` takes are not routed (EntryGate)."""
        self._busy, self._busy_at, self._draining, self._refuse = busy, index, draining, refuse

    # ---- entry points from the transport (its Receiver) -----------------------------------
    def on_data(self, data: bytes, rcv: RecvInfo) -> None:
        """One datagram's bytes, parsed as a UDP transport does (tests, benchmarks)."""
        deliver_datagram(self, data, rcv, self.limits)

    def on_bad_message(self, data: bytes, rcv: RecvInfo, error: SipParseError) -> None:
        """Bytes that did not parse: a 400 (or the error's status) when the request's
        addressing can be read, else dropped; counted either way."""
        busy, at = self._busy, self._busy_at
        busy[at] = monotonic()
        try:
            self.stats.bad_msg_hdr.inc()
            self._answer_unparsable(data, rcv, error)
        finally:
            busy[at] = 0.0

    def on_message(self, msg: SipMsg, rcv: RecvInfo) -> None:
        """A parsed message, whatever transport brought it: counted, then a request runs the
        request route, a reply the reply route and the reply handlers (tm) or is forwarded
        statelessly. One function on purpose: every message passes here, and the entry gate,
        the counting and the request and reply halves were each a Python call more."""
        if self._draining[0] and self._refuse(msg, rcv):
            return
        busy, at = self._busy, self._busy_at
        busy[at] = monotonic()
        LOG_CONTEXT.msg = msg  # log lines name its Call-ID, method, CSeq (read when written)
        if self.log_prefix is not None:
            LOG_CONTEXT.prefix = self._eval_prefix(msg, rcv)
        core = self.core
        try:
            # core.follow_reload() written out, a call less on every message: a script
            # reloaded by the main process takes over here (one read of the shared generation)
            reload = core._reload
            if reload is not None and reload.cell.value != reload.seen:
                reload.follow()
            if msg.is_request:
                # stats.request(method) written out; its total is the sum of these
                method = msg.method
                counter = self._by_method.get(method, self._unsupported)
                counter.view[counter.slot] += 1
                check_request_headers(msg)
                ctx = message_context(msg, rcv, core, REQUEST, msg.ruri)  # core.new_context
                for accept in core.request_filters:
                    if accept(ctx):
                        return
                if method == "ACK":
                    for accept in core.ack_filters:
                        if accept(ctx):
                            return
                # run_route(core, self.request_cb, ctx) written out (its result is not read
                # here): a call less for every request; exit/drop/fault mapped by route_raised
                engine = core.engine
                if engine is None:
                    run_route(core, self.request_cb, ctx)  # its fault: no engine is active
                else:
                    try:
                        engine.run(self.request_cb, ctx)
                    except Exception as exc:  # noqa: BLE001 - a script fault never leaves it
                        route_raised(self.request_cb, ctx, exc)
                if ctx.fault is not None:
                    self.stats.script_errors.inc()
                    if not ctx.replied and method != "ACK":
                        self._send_simple_reply(ctx, 500, "Server Internal Error")
                return
            steer = self.steer  # another worker's transaction: to that worker, counted there
            if steer is not None and steer(msg, rcv):
                self.stats.replies_handed_over.inc()
                return
            # a reply: stats.reply(status, CSeq method) written out
            key: tuple[int, str | None]
            try:
                key = (msg.status, msg.cseq.method)
            except SipParseError:  # a CSeq that does not parse: the reply fails later
                key = (msg.status, None)
            counters = self._reply_counters.get(key)
            if counters is None:
                counters = self.stats.counters_of_reply(*key)
            for counter in counters:
                counter.view[counter.slot] += 1
            ctx = message_context(msg, rcv, core, CORE_ONREPLY)  # core.new_context
            engine = core.engine
            if engine is not None and engine.has_route(self.reply_cb):
                run_route(core, self.reply_cb, ctx)
                if ctx.fault is not None:
                    self.stats.script_errors.inc()
                if ctx.dropped:
                    self.stats.drop_replies.inc()
                    return
            for handler in core.reply_handlers:
                if handler(ctx):
                    return
            forward_reply(core, msg, True, ctx)
        except SipParseError as exc:
            self._parse_failed(msg, rcv, exc)
        except Exception as exc:  # the guard: one message never takes the worker down
            self._guard_failed(msg, rcv, exc)
        finally:
            busy[at] = 0.0
            LOG_CONTEXT.msg = None
            LOG_CONTEXT.prefix = ""

    def _parse_failed(self, msg: SipMsg, rcv: RecvInfo, exc: SipParseError) -> None:
        """A header the script read turned out malformed (parsing is lazy): counted, logged,
        and a request but ACK answered with the error's status."""
        self.stats.bad_msg_hdr.inc()
        if msg.is_request and _bad_ruri(msg):
            self.stats.bad_URIs_rcvd.inc()
        self.limited.info("bad_message", "bad message from %s:%s: %s", rcv.src_ip,
                          rcv.src_port, exc.reason)
        if msg.is_request and msg.method != "ACK":
            self._try_reply(msg, rcv, exc.status, exc.reason)

    def _guard_failed(self, msg: SipMsg, rcv: RecvInfo, exc: Exception) -> None:
        """The last-chance guard: any other error handling a message is counted and logged."""
        self.stats.script_errors.inc()
        self.limited.error("unexpected", "unexpected error handling a message from %s:%s: %s",
                           rcv.src_ip, rcv.src_port, brief_error(exc))

    def _eval_prefix(self, msg: SipMsg, rcv: RecvInfo) -> str:
        """Kamailio's log_prefix: the format evaluated once for each received message."""
        try:
            return str(self.log_prefix(self.core.new_context(msg, rcv)))  # type: ignore[misc]
        except Exception:  # a header the prefix reads may be malformed: no prefix then
            return ""

    # ---- local replies ----------------------------------------------------------------
    def _send_simple_reply(self, ctx: MsgContext, status: int, reason: str) -> None:
        try:
            rcv = ctx.rcv
            data = build_reply(ctx.msg, status, reason, to_tag=self.core.local_tag(ctx.msg),
                               top_via=reply_top_via(ctx.msg, rcv.src_ip, rcv.src_port,
                                                     ctx.force_rport))
        except SipParseError:
            return
        self.core.send_reply(ctx, data)

    def _try_reply(self, msg: SipMsg, rcv: RecvInfo, status: int, reason: str) -> None:
        """An error reply to a request found malformed; never raises. With an unreadable top
        Via it goes where the request came from (over TCP: back on its connection)."""
        try:
            data = build_reply(msg, status, reason, to_tag=self.core.local_tag(msg),
                               top_via=reply_top_via(msg, rcv.src_ip, rcv.src_port, False))
            try:
                self.core.send_reply(self.core.new_context(msg, rcv), data)
            except SipParseError:
                self.core.send(rcv.proto, rcv.src_ip, rcv.src_port, data,
                               (rcv.dst_ip, rcv.dst_port))
        except Exception as exc:  # nothing addressable: the drop is the answer
            self.limited.info("unanswerable", "no %d sent to %s:%s: %s", status, rcv.src_ip,
                              rcv.src_port, brief_error(exc))

    def _answer_unparsable(self, data: bytes, rcv: RecvInfo, exc: SipParseError) -> None:
        """RFC 3261 16.3 / 8.2: answer 400 when enough of the request is readable, else drop."""
        reply = salvage_error_reply(data, exc.status, exc.reason)
        if reply is None:
            self.limited.info("unparsable", "dropped unparsable message from %s:%s: %s",
                              rcv.src_ip, rcv.src_port, exc.reason)
            return
        self.limited.info("unparsable", "answered %s to a bad request from %s:%s: %s",
                          exc.status, rcv.src_ip, rcv.src_port, exc.reason)
        dest_port = rcv.src_port
        self.core.send(rcv.proto, rcv.src_ip, dest_port, reply, (rcv.dst_ip, rcv.dst_port))


def _route_all(msg: SipMsg, rcv: RecvInfo) -> bool:
    """The entry gate's refusal before a worker drains: none (never asked while not draining)."""
    return False


def _bad_ruri(msg: SipMsg) -> bool:
    try:
        parse_uri(msg.ruri)
    except (SipParseError, ValueError):
        return True
    return False


def _prefix_format(core: Core, prefix: str | None) -> Callable[[MsgContext], str] | None:
    if not prefix:
        return None
    try:
        return core.pv.compile_format(prefix)
    except ValueError as exc:  # an unknown variable: print the text as it is, say why once
        log.error("log_prefix %r: %s; printed as it is", prefix, exc)
        return lambda ctx: prefix


_HDR_LINE = re.compile(rb"^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:(.*)$", re.IGNORECASE | re.MULTILINE)
_COMPACT = {b"v": b"Via", b"f": b"From", b"t": b"To", b"i": b"Call-ID"}


def salvage_error_reply(data: bytes, status: int, reason: str) -> bytes | None:
    """Build an error reply for a request the parser refused, from the lines that can be read.

    Only requests get one (not ACK), and only when a Via, From, To, Call-ID and CSeq can be
    found: without them no client could match the reply anyway.
    """
    head = data.split(b"\r\n\r\n", 1)[0]
    first = head.split(b"\n", 1)[0]
    if first.startswith(b"SIP/") or first.upper().startswith(b"ACK "):
        return None
    found: dict[bytes, list[bytes]] = {}
    for m in _HDR_LINE.finditer(head.replace(b"\r\n", b"\n")):
        name = m.group(1).lower()
        name = _COMPACT.get(name, name).lower()
        found.setdefault(name, []).append(m.group(2).strip())
    if not all(k in found for k in (b"via", b"from", b"to", b"call-id", b"cseq")):
        return None
    reason_b = reason.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")[:100]
    lines = [b"SIP/2.0 %d %s" % (status, reason_b)]
    lines += [b"Via: " + v for v in found[b"via"]]
    lines.append(b"From: " + found[b"from"][0])
    lines.append(b"To: " + found[b"to"][0])
    lines.append(b"Call-ID: " + found[b"call-id"][0])
    lines.append(b"CSeq: " + found[b"cseq"][0])
    lines.append(b"Content-Length: 0")
    return b"\r\n".join(lines) + b"\r\n\r\n"
