"""sl.so: stateless replies (Kamailio's sl module).

A reply built here is sent once, with no retransmission; its To-tag is derived from the
request, so retransmissions of one request get the same tag, and ACKs for our own negative
replies are absorbed before the script sees them (RFC 3261 17.2.1 has the server transaction do
this; sl does it without state).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from kemi_core.api import (
    CfgFunction,
    Core,
    KemiExport,
    MsgContext,
    ReturnKind,
    TmApi,
    export,
    hookimpl,
)
from kemi_core.sip import (
    SipParseError,
    ack_absorber,
    build_reply,
    reply_top_via,
    request_crc32,
    stateless_sender,
    usual_reply,
)
from kemi_sl.stats import SlStats

log = logging.getLogger("kemi.sl")
#: no body set by set_reply_body
_NO_BODY: tuple[bytes, None] = (b"", None)
#: the entry types of a reply_headers list that are all (name, value) pairs
_PAIRS_ONLY = frozenset((tuple,))
#: (name, value) pairs a module adds to a reply (SlApi.send_reply's headers)
Headers = Sequence[tuple[str, str]]

MODULE = "sl"


def exports() -> list[KemiExport]:
    # (the Python forms give the records their parameter names and docs; the compiled forms run)
    return [
        attrs.evolve(export(MODULE, "sl_send_reply", _sl_send_reply_py, "is"), func=sl_send_reply),
        attrs.evolve(export(MODULE, "send_reply", _send_reply_py, "is"), func=send_reply),
        export(MODULE, "send_reply_mode", send_reply_mode, "isi"),
        export(MODULE, "sl_reply_error", sl_reply_error, ""),
        export(MODULE, "sl_forward_reply", sl_forward_reply, "ss"),
        export(MODULE, "get_reply_totag", get_reply_totag, "", ReturnKind.XVAL),
        # The seed document's names (Kamailio 5.0): sreply is sl_send_reply, freply send_reply.
        attrs.evolve(export(MODULE, "sreply", _sl_send_reply_py, "is"), func=sl_send_reply),
        attrs.evolve(export(MODULE, "freply", _send_reply_py, "is"), func=send_reply),
    ]


class _State:
    """Set in mod_init (main process) so every worker shares the tag prefix."""

    core: Core | None = None
    tag_prefix = ""
    stats: SlStats | None = None
    #: send_reply's tm (None: reply statelessly), looked up at its first use for ``tm_for``
    tm: TmApi | None = None
    tm_for: Core | None = None


_state = _State()


# ---- hooks ----------------------------------------------------------------------------
@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "default_code", int, 500,
                       doc="accepted (Kamailio's sl_reply_error does not use it either)")
    core.declare_param(MODULE, "default_reason", str, "Internal Server Error",
                       doc="accepted (Kamailio's sl_reply_error does not use it either)")
    core.declare_param(MODULE, "bind_tm", int, 1, doc="send_reply uses tm when a transaction exists")
    core.declare_param(MODULE, "event_callback", str, "")
    for name, func in (("sl_send_reply", _cfg_sl_send_reply), ("send_reply", _cfg_send_reply)):
        core.add_cfg_function(CfgFunction(MODULE, name, func, 2, 2, (0,)))
    core.add_cfg_function(CfgFunction(MODULE, "sl_reply_error", lambda ctx: sl_reply_error(ctx)))
    core.add_cfg_function(CfgFunction(MODULE, "sl_forward_reply", _cfg_forward_reply, 0, 2))
    core.add_rpc("sl.stats", _rpc_stats, "stateless replies sent, by code and class")
    core.provide(MODULE, _Api())


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    _state.core = core
    _state.tm_for = None
    _state.stats = SlStats(core)  # before the fork: the counters are shared memory
    _state.tag_prefix = core.local_tag_prefix  # the ACK of any local stateless reply is ours
    core.ack_filters.append(_absorb_own_ack_compiled)


# ---- KEMI functions -------------------------------------------------------------------
def _sl_send_reply_py(ctx: MsgContext, code: int, reason: str, added: Headers = ()) -> int:
    """Send a stateless reply with this code and reason to the current request (``added``:
    a module's own headers, after the script's; scripts pass none)."""
    # the usual reply (a request but ACK, nothing queued by the script, no 3xx) built and
    # addressed in one compiled call; anything else, or any doubt, takes the Python way
    made = None if usual_reply is None else usual_reply(ctx, code, reason, _state.tag_prefix,
                                                        added)
    if made is not None:
        sent = ctx.core.send_reply_to(ctx, *made)
    else:
        data = _reply_bytes(ctx, code, reason, added)
        if isinstance(data, int):  # no reply: sl_send_reply's answer
            return data
        sent = ctx.core.send_reply(ctx, data)
    stats = _state.stats
    if not sent:
        if stats is not None:
            stats.failures.inc()
        return -1
    if stats is not None:
        # stats.replied(code) for a code checked to be 100-699, with Counter.inc in place
        counter = stats.for_code[code]
        counter.view[counter.slot] += 1
    return 1


def _reply_bytes(ctx: MsgContext, code: int, reason: str, added: Headers) -> bytes | int:
    """The reply's bytes built in Python (every check, the script's queued headers and body, a
    3xx's Contacts), or sl_send_reply's answer when none is sent (errors logged)."""
    msg = ctx.msg
    if not msg.is_request:
        log.error("sl_send_reply: the current message is a reply")
        return -1
    if msg.method == "ACK":
        return 1  # an ACK gets no reply (RFC 3261 17.2.1)
    if not 100 <= code <= 699:
        log.error("sl_send_reply: invalid code %d", code)
        return -1
    extra = ctx.extra
    # totag_for(ctx) in place (every reply but a 100 carries the tag: a call less per reply)
    tag = None if code == 100 else f"{_state.tag_prefix}.{request_crc32(msg):08x}"
    rcv = ctx.rcv
    via = reply_top_via(msg, rcv.src_ip, rcv.src_port, ctx.force_rport)  # ;received, ;rport=
    try:
        # (extra holds more than these: the native engine's $rc is there after any call)
        if "reply_headers" in extra or "reply_body" in extra or 300 <= code < 400:
            return build_reply(msg, code, reason, tag, *_reply_additions(ctx, code, extra, added),
                               top_via=via)
        return build_reply(msg, code, reason, tag, added, top_via=via)  # nothing queued
    except SipParseError as exc:
        log.error("sl_send_reply: cannot reply to a malformed request: %s", exc.reason)
        return -1


def _reply_additions(ctx: MsgContext, code: int, extra: dict[str, Any], added: Headers
                     ) -> tuple[list[tuple[str, str]], bytes, str | None]:
    """The headers (append_to_reply, then a module's ``added``, a 3xx's destinations) and the
    body (set_reply_body) the script gave the reply."""
    queued = extra.get("reply_headers")
    # (name, value) pairs as they are; a whole "Name: value" line is split (when every entry
    # is a pair, as auth's are, the list is copied at C level)
    if not queued:
        headers = [*added]
    elif {*map(type, queued)} <= _PAIRS_ONLY:
        headers = [*queued, *added]
    else:
        headers = [h if type(h) is tuple else _split_header(h) for h in queued]
        headers += added
    if 300 <= code < 400:
        headers += [("Contact", f"<{uri}>") for uri in _destination_set(ctx)]
    body, ctype = extra.get("reply_body", _NO_BODY)
    return headers, body, ctype


def _send_reply_py(ctx: MsgContext, code: int, reason: str, added: Headers = ()) -> int:
    """Reply statefully when tm holds a transaction for the request, else statelessly
    (``added``: a module's own headers, after the script's; scripts pass none)."""
    tm = _state.tm if _state.tm_for is ctx.core else _bound_tm(ctx.core)
    if tm is not None and tm.has_transaction(ctx):
        return _t_reply(tm, ctx, code, reason, added) if added else int(tm.t_reply(ctx, code, reason))
    return sl_send_reply(ctx, code, reason, added)


def _t_reply(tm: TmApi, ctx: MsgContext, code: int, reason: str, added: Headers) -> int:
    """tm's reply with ``added`` after the script's queued headers (tm reads the queue; the
    script's own stay queued, as they were)."""
    extra = ctx.extra
    pending = extra.get("reply_headers")
    if pending is None:
        pending = extra["reply_headers"] = []
    queued = len(pending)
    pending.extend(added)
    try:
        return int(tm.t_reply(ctx, code, reason))
    finally:
        del pending[queued:]


#: sl_send_reply and send_reply: the usual reply (tm check, build, send, counters) in one
#: compiled call each (kemi_core.sip.stateless_sender); the Python forms above are the
#: reference and take every other shape
sl_send_reply = stateless_sender(_sl_send_reply_py, None, _state, Core)
send_reply = stateless_sender(_sl_send_reply_py, _send_reply_py, _state, Core)


class _Api:
    """sl's service to other modules (:class:`~kemi_core.services.SlApi`)."""

    send_reply = staticmethod(send_reply)


def _bound_tm(core: Core) -> TmApi | None:
    """tm's API when it is loaded and bind_tm is on; looked up once (every module is
    initialised before the first message), not for every reply."""
    tm = core.service("tm", TmApi)
    _state.tm = tm if tm is not None and core.modparam(MODULE, "bind_tm") else None
    _state.tm_for = core
    return _state.tm


def send_reply_mode(ctx: MsgContext, code: int, reason: str, mode: int) -> int:
    """send_reply with Kamailio's mode flags (connection handling; UDP ignores them)."""
    return send_reply(ctx, code, reason)


#: Kamailio 5.6's answer when no known internal error is behind sl_reply_error (run: its
#: internal error number 1 in the reason)
UNKNOWN_ERROR = (500, "I'm terribly sorry, server error occurred (1/SL)")


def sl_reply_error(ctx: MsgContext) -> int:
    """Reply with the last internal error of this message, worded as Kamailio 5.6 does
    ("<reason> (<code>/SL)"): a From or To URI that does not parse (read through $fU, $fd,
    $tU, $td) gives "479 Regretfully, we were not able to process the URI (479/SL)", a t_relay
    in native routes that sent nothing "478 Unresolvable destination (478/SL)" and the like; with
    no known error, "500 I'm terribly sorry, server error occurred (1/SL)"."""
    error = ctx.extra.get("last_error")
    if error is None:
        code, reason = UNKNOWN_ERROR
    else:  # (status, reason) or (status, reason, Kamailio's error number when not the status)
        code, reason = error[0], error[1]
        reason = f"{reason} ({error[2] if len(error) > 2 else code}/SL)"
    ret = sl_send_reply(ctx, code, reason)
    if ret > 0 and _state.stats is not None:
        _state.stats.sent_err.inc()
    return ret


def sl_forward_reply(ctx: MsgContext, code: str, reason: str) -> int:
    """Forward the received reply statelessly now, optionally with a new code and reason."""
    msg = ctx.msg
    if msg.is_request:
        log.error("sl_forward_reply: the current message is a request")
        return -1
    if code:
        try:
            new_code = int(code)
        except ValueError:
            log.error("sl_forward_reply: bad code %r", code)
            return -1
        if new_code // 100 != msg.status // 100:
            log.error("sl_forward_reply: %d is not of the class of %d", new_code, msg.status)
            return -1
        msg.set_status(new_code, reason or msg.reason)
    if not ctx.core.forward_reply_statelessly(ctx):
        return -1
    ctx.dropped = True  # sent: the core must not forward it again
    return 1


def get_reply_totag(ctx: MsgContext) -> str | None:
    """The To-tag a stateless reply to the current request carries."""
    if not ctx.msg.is_request:
        return None
    return totag_for(ctx)


# ---- helpers --------------------------------------------------------------------------
def totag_for(ctx: MsgContext) -> str:
    """Same tag for every retransmission of one request; our prefix marks it as ours.

    The suffix is a CRC-32 of the raw Call-ID, From, CSeq and top Via lines (request_crc32):
    nothing has to be parsed, and it is the same in every worker (no per-process hash)."""
    return f"{_state.tag_prefix}.{request_crc32(ctx.msg):08x}"


def _absorb_own_ack(ctx: MsgContext) -> bool:
    msg = ctx.msg
    if msg.method != "ACK" or not _state.tag_prefix:
        return False
    try:
        tag = msg.to.tag
    except SipParseError:
        return False
    if tag is not None and tag.startswith(_state.tag_prefix + "."):
        if _state.stats is not None:
            _state.stats.received_acks.inc()
        return True
    return False


#: _absorb_own_ack as the dispatcher calls it for every ACK: compiled (kemi_core.sip.ack_absorber)
#: for the usual message, the function above for the rest
_absorb_own_ack_compiled: Callable[[MsgContext], bool] = (
    _absorb_own_ack if ack_absorber is None else ack_absorber((_state, _absorb_own_ack)))


def _split_header(line: str | tuple[str, str]) -> tuple[str, str]:
    """append_to_reply entries: ``(name, value)`` pairs or whole ``Name: value`` lines."""
    if isinstance(line, tuple):
        return line
    name, _, value = line.strip().partition(":")
    return name.strip(), value.strip()


def _destination_set(ctx: MsgContext) -> list[str]:
    uris = []
    if ctx.orig_ruri is not None and ctx.msg.ruri != ctx.orig_ruri:
        uris.append(ctx.msg.ruri)
    uris += [b.uri for b in ctx.branches]
    return uris


def _cfg_sl_send_reply(ctx: MsgContext, code: int, reason: str) -> int:
    # The reason is a dynamic string in kamailio.cfg, as in Kamailio: "$var(x)" is evaluated.
    return sl_send_reply(ctx, code, ctx.core.pv.format(reason)(ctx) if "$" in reason else reason)


def _cfg_send_reply(ctx: MsgContext, code: int, reason: str) -> int:
    return send_reply(ctx, code, ctx.core.pv.format(reason)(ctx) if "$" in reason else reason)


def _cfg_forward_reply(ctx: MsgContext, code: str = "", reason: str = "") -> int:
    return sl_forward_reply(ctx, code, reason)


def _rpc_stats(core: Core, params: list[Any]) -> dict[str, int]:
    return _state.stats.rpc_stats() if _state.stats is not None else {}
