"""acc.so: accounting of requests and transactions, to the log (Kamailio's syslog backend).

* ``acc_log_request(comment)``: account the current request now; ``comment`` is the code and
  reason to record (``"403 Forbidden"``).
* Transactions: when tm sends a final reply upstream for a transaction whose request had the
  ``log_flag`` set, it is accounted ("transaction answered"); a failed one (>= 300) only when
  ``failed_transaction_flag`` is set too. With ``log_missed_flag`` set, a failed INVITE is also
  logged as "call missed".
* ``log_extra`` adds ``name=$pv`` values. The database backend (``db_flag``, ``db_url`` ...)
  writes the same records to Kamailio's ``acc`` / ``missed_calls`` tables: not built yet, so
  setting it is refused at start-up rather than silently not accounting.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kemi_acc.records import AccRecord, LogWriter, Writer, extra_values, parse_extra
from kemi_core.api import (
    CfgFunction,
    Core,
    KemiExport,
    ModuleError,
    MsgContext,
    SipMsg,
    SipParseError,
    export,
    get_pv,
    hookimpl,
    kamailio_level,
    parse_datagram,
)

log = logging.getLogger("kemi.acc")

MODULE = "acc"


class _State:
    core: Core | None = None
    log_flag = -1
    missed_flag = -1
    failed_flag = -1
    extra: list[tuple[str, str]] = []
    writer: Writer | None = None


_state = _State()


def exports() -> list[KemiExport]:
    return [
        export(MODULE, "acc_log_request", acc_log_request, "s"),
        export(MODULE, "acc_db_request", acc_db_request, "ss"),
        export(MODULE, "acc_request", acc_request, "ss"),
    ]


@hookimpl
def mod_register(core: Core) -> None:
    p = core.declare_param
    for name, doc in (("log_flag", "message flag: account the transaction to the log"),
                      ("log_missed_flag", "message flag: log a failed INVITE as a missed call"),
                      ("failed_transaction_flag", "message flag: account failed transactions too"),
                      ("db_flag", "message flag: account to the database (not built yet)"),
                      ("db_missed_flag", "message flag: missed calls to the database (not built)")):
        p(MODULE, name, int, -1, doc=doc)
    p(MODULE, "log_level", int, 1, doc="Kamailio log level of the records (1: notice)")
    p(MODULE, "log_facility", str, "LOG_DAEMON", doc="syslog facility (accepted)")
    p(MODULE, "log_extra", str, "", doc="extra values: name=$pv;name2=$pv2")
    for name in ("early_media", "report_ack", "report_cancels", "detect_direction",
                 "cdr_enable", "db_insert_mode", "time_mode"):
        p(MODULE, name, int, 0, doc="accepted for compatibility")
    for name in ("db_url", "db_extra", "db_table_acc", "db_table_missed_calls", "multi_leg_info",
                 "acc_method_column", "acc_from_tag_column", "acc_to_tag_column",
                 "acc_callid_column", "acc_sip_code_column", "acc_sip_reason_column",
                 "acc_time_column", "time_attr", "time_exten", "cdr_extra"):
        p(MODULE, name, str, "", doc="database backend setting (the backend is not built yet)")
    core.add_cfg_function(CfgFunction(MODULE, "acc_log_request", _cfg_log_request, 1, 1, (),
                                      acc_log_request.__doc__ or ""))
    core.add_cfg_function(CfgFunction(MODULE, "acc_db_request", _cfg_db_request, 2, 2, (),
                                      acc_db_request.__doc__ or ""))
    core.add_cfg_function(CfgFunction(MODULE, "acc_request", _cfg_request, 2, 2, (),
                                      acc_request.__doc__ or ""))


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    _state.core = core
    if str(core.modparam(MODULE, "db_url")) or int(core.modparam(MODULE, "db_flag")) >= 0 \
            or int(core.modparam(MODULE, "db_missed_flag")) >= 0:
        raise ModuleError("acc: accounting to a database (db_url, db_flag, db_missed_flag) is not "
                          "available yet in kemi; account to the log (log_flag) instead")
    _state.log_flag = _flag(core, "log_flag")
    _state.missed_flag = _flag(core, "log_missed_flag")
    _state.failed_flag = _flag(core, "failed_transaction_flag")
    try:
        _state.extra = parse_extra(str(core.modparam(MODULE, "log_extra")))
    except ValueError as exc:
        raise ModuleError(f"acc: log_extra: {exc}")
    level = kamailio_level(int(core.modparam(MODULE, "log_level")))
    _state.writer = LogWriter(logging.getLogger("kemi.acc"), level)
    if any(f >= 0 for f in (_state.log_flag, _state.missed_flag)):
        _arm_tm(core)


def _flag(core: Core, name: str) -> int:
    value = int(core.modparam(MODULE, name))
    if not -1 <= value <= 31:
        raise ModuleError(f"acc: {name} {value} is out of 0..31")
    return value


def _arm_tm(core: Core) -> None:
    """Ask tm to tell us about each final reply it sends upstream."""
    tm = core.services.get("tm")
    handlers = getattr(tm, "final_handlers", None)
    if handlers is None:
        raise ModuleError("acc: transaction accounting needs the tm module (load tm before acc)")
    if _on_final not in handlers:
        handlers.append(_on_final)


# ---- building records -------------------------------------------------------------------
def _tag(fn: Any) -> str:
    try:
        value = fn()
    except SipParseError:
        return ""
    return value or ""


def record_for(ctx: MsgContext, code: str, reason: str, to_tag: str | None = None) -> AccRecord:
    msg = ctx.msg
    return AccRecord(
        method=msg.method, from_tag=_tag(lambda: msg.from_.tag),
        to_tag=to_tag if to_tag is not None else _tag(lambda: msg.to.tag),
        call_id=_tag(lambda: msg.call_id), code=code, reason=reason, time=time.time(),
        extra=extra_values(_state.extra, lambda spec: get_pv(ctx, spec)))


def _write(record: AccRecord, kind: str) -> int:
    if _state.writer is None:
        return -1
    return 1 if _state.writer.write(record, kind) else -1


# ---- script functions -------------------------------------------------------------------
def acc_log_request(ctx: MsgContext, comment: str) -> int:
    """Account the current request to the log now; ``comment`` gives the code and reason to
    record ("403 Forbidden"; text without a code is recorded as the reason)."""
    if not ctx.msg.is_request:
        log.error("acc_log_request: the current message is a reply")
        return -1
    code, _, reason = comment.strip().partition(" ")
    if not (code.isdigit() and len(code) == 3):
        code, reason = "", comment.strip()
    return _write(record_for(ctx, code, reason.strip()), "request")


def acc_db_request(ctx: MsgContext, comment: str, table: str) -> int:
    """Account the current request to database table ``table``: not available yet (-1)."""
    log.error("acc_db_request: no database backend in kemi's acc yet")
    return -1


def acc_request(ctx: MsgContext, comment: str, table: str) -> int:
    """Account the current request to every backend: the log (the database backend is not
    available yet)."""
    return acc_log_request(ctx, comment)


def _dyn(text: str, ctx: MsgContext) -> str:
    return ctx.core.pv.format(text)(ctx) if "$" in text else text


def _cfg_log_request(ctx: MsgContext, comment: str) -> int:
    return acc_log_request(ctx, _dyn(comment, ctx))


def _cfg_db_request(ctx: MsgContext, comment: str, table: str) -> int:
    return acc_db_request(ctx, _dyn(comment, ctx), _dyn(table, ctx))


def _cfg_request(ctx: MsgContext, comment: str, table: str) -> int:
    return acc_request(ctx, _dyn(comment, ctx), _dyn(table, ctx))


# ---- transactions -------------------------------------------------------------------------
def _on_final(tx: Any) -> None:
    """tm: the transaction ``tx`` sent its final reply upstream."""
    core = _state.core
    status = int(tx.final_status)
    flags = int(tx.glue.flags)
    request: SipMsg = tx.request

    def isset(flag: int) -> bool:
        return flag >= 0 and bool(flags & (1 << flag))

    account = isset(_state.log_flag) and (status < 300 or isset(_state.failed_flag))
    missed = status >= 300 and isset(_state.missed_flag) and request.method == "INVITE"
    if core is None or not (account or missed):
        return
    reason, reply_tag = _final_reply_parts(tx)
    to_tag: str | None = reply_tag
    if status < 300 and not tx.glue.replied:
        # A 2xx the server sent itself (t_reply): Kamailio accounts the request's own To-tag
        # and the standard reason phrase, not those of the reply it built.
        to_tag, reason = None, _STANDARD_REASONS.get(status, "")
    ctx = core.new_context(request, tx.glue.rcv)
    ctx.flags = flags
    if account:
        _write(record_for(ctx, str(status), reason, to_tag), "acc")
    if missed:
        _write(record_for(ctx, str(status), reason, to_tag), "missed")


_STANDARD_REASONS = {200: "OK", 202: "Accepted", 204: "No Notification"}


def _final_reply_parts(tx: Any) -> tuple[str, str]:
    """Reason phrase and To-tag of the final reply the transaction sent."""
    data = getattr(getattr(tx, "server", None), "last_reply", None)
    if not data:
        return "", ""
    try:
        reply = parse_datagram(data)
        return reply.reason, reply.to.tag or ""
    except SipParseError:
        return "", ""
