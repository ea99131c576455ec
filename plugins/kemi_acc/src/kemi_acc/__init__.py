"""acc.so: accounting of requests and transactions, to the log (Kamailio's syslog backend).

* ``acc_log_request(comment)``: account the current request now; ``comment`` is the code and
  reason to record (``"403 Forbidden"``).
* Transactions: when tm sends a final reply upstream for a transaction whose request had the
  ``log_flag`` set, it is accounted ("transaction answered"); a failed one (>= 300) only when
  ``failed_transaction_flag`` is set too. With ``log_missed_flag`` set, a failed INVITE is also
  logged as "call missed".
* ``log_extra`` adds ``name=$pv`` values.
* The database backend (``db_url``): ``db_flag`` and ``db_missed_flag`` do for the database what
  ``log_flag`` and ``log_missed_flag`` do for the log (each backend has its own flags, as in
  Kamailio; ``failed_transaction_flag`` serves both), writing rows to the ``acc`` and
  ``missed_calls`` tables (``db_table_acc``, ``db_table_missed_calls``) with ``db_extra``
  columns; ``acc_db_request(comment, table)`` writes one row now, ``acc_request`` to the log
  and the database.
* ``time_mode`` (with ``time_attr``, ``time_exten``, ``time_format``): an extra time value per
  record, in the log and the database (``timemode``).
* ``multi_leg_info``: per-call-leg values from AVPs, appended in the log, one row per leg in
  the database (``legs``).
* ``db_insert_mode`` 2: database rows are written by a background thread, never on the event
  loop; a stopping worker waits for its queued rows (``dbwriter``).
* ``cdr_enable`` needs Kamailio's dialog module, which kemi does not have: 1 is refused at
  start-up.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kemi_acc.dbwriter import CORE_COLUMNS, Columns, DbWriter
from kemi_acc.legs import parse_legs, read_legs
from kemi_acc.records import AccRecord, LogWriter, Writer, extra_values, parse_extra
from kemi_acc.timemode import DEFAULT_FORMAT, TimeMode
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
    open_db,
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
    db_flag = -1
    db_missed_flag = -1
    db_extra: list[tuple[str, str]] = []
    db: DbWriter | None = None
    db_table_acc = "acc"
    db_table_missed = "missed_calls"
    legs: list[tuple[str, str]] = []  # multi_leg_info: (name, AVP name)


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
                      ("db_flag", "message flag: account the transaction to the database"),
                      ("db_missed_flag", "message flag: write a failed INVITE to missed_calls")):
        p(MODULE, name, int, -1, doc=doc)
    p(MODULE, "log_level", int, 1, doc="Kamailio log level of the records (1: notice)")
    p(MODULE, "log_facility", str, "LOG_DAEMON", doc="syslog facility (accepted)")
    p(MODULE, "log_extra", str, "", doc="extra values: name=$pv;name2=$pv2")
    for name in ("early_media", "report_ack", "report_cancels", "detect_direction"):
        p(MODULE, name, int, 0, doc="accepted for compatibility")
    p(MODULE, "cdr_enable", int, 0, doc="1 (CDRs from the dialog module) is refused: kemi "
      "has no dialog module")
    p(MODULE, "db_insert_mode", int, 0, doc="0/1: insert at once (1 is MySQL's INSERT DELAYED: "
      "a plain insert here); 2: insert from a background thread, never blocking the worker")
    p(MODULE, "time_mode", int, 0, doc="extra time value: 1 seconds in time_attr and "
      "microseconds in time_exten; 2 seconds.milliseconds in time_attr; 3/4 time_format of "
      "the local time / UTC in time_attr; 0 none")
    p(MODULE, "time_attr", str, "time_attr", doc="log field / database column of time_mode's value")
    p(MODULE, "time_exten", str, "time_exten", doc="log field / database column of the "
      "microseconds (time_mode 1)")
    p(MODULE, "time_format", str, DEFAULT_FORMAT, doc="strftime format of time_mode 3 and 4")
    p(MODULE, "multi_leg_info", str, "", doc="per-leg values: name=$avp(x);name2=$avp(y) "
      "(log fields / database columns)")
    p(MODULE, "acc_extra_nullable", int, 0, doc="1: an empty db_extra value is written NULL")
    p(MODULE, "db_url", str, "", doc="database of the acc and missed_calls tables")
    p(MODULE, "db_extra", str, "", doc="extra columns: column=$pv;column2=$pv2")
    p(MODULE, "db_table_acc", str, "acc", doc="table of accounted transactions")
    p(MODULE, "db_table_missed_calls", str, "missed_calls", doc="table of missed calls")
    for name, default in CORE_COLUMNS:
        p(MODULE, name, str, default, doc=f"column of the {default} field")
    p(MODULE, "cdr_extra", str, "", doc="accepted for compatibility (CDRs are not made)")
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
    if int(core.modparam(MODULE, "cdr_enable")) == 1:
        raise core.param_error(MODULE, "cdr_enable", "CDRs need Kamailio's dialog module, which "
                               "kemi does not have (set it to 0)")
    try:
        _state.legs = parse_legs(str(core.modparam(MODULE, "multi_leg_info")))
    except ValueError as exc:
        raise core.param_error(MODULE, "multi_leg_info", str(exc))
    time_mode = _time_mode(core)
    _init_db(core, time_mode)
    _state.log_flag = _flag(core, "log_flag")
    _state.missed_flag = _flag(core, "log_missed_flag")
    _state.failed_flag = _flag(core, "failed_transaction_flag")
    try:
        _state.extra = parse_extra(str(core.modparam(MODULE, "log_extra")))
    except ValueError as exc:
        raise ModuleError(f"acc: log_extra: {exc}")
    level = kamailio_level(int(core.modparam(MODULE, "log_level")))
    _state.writer = LogWriter(logging.getLogger("kemi.acc"), level, time_mode)
    if any(f >= 0 for f in (_state.log_flag, _state.missed_flag, _state.db_flag,
                            _state.db_missed_flag)):
        _arm_tm(core)


def _time_mode(core: Core) -> TimeMode:
    def text(name: str) -> str:
        return str(core.modparam(MODULE, name))

    return TimeMode(int(core.modparam(MODULE, "time_mode")), text("time_attr"),
                    text("time_exten"), text("time_format"))


def _init_db(core: Core, time_mode: TimeMode) -> None:
    """The database backend, when db_url is set (Kamailio: no db_url, no SQL accounting)."""
    url = str(core.modparam(MODULE, "db_url")).strip()
    _state.db_flag = _flag(core, "db_flag")
    _state.db_missed_flag = _flag(core, "db_missed_flag")
    if not url:
        if _state.db_flag >= 0 or _state.db_missed_flag >= 0:
            log.warning("acc: db_flag/db_missed_flag without db_url: no database accounting")
        _state.db = None
        return
    try:
        _state.db_extra = parse_extra(str(core.modparam(MODULE, "db_extra")))
    except ValueError as exc:
        raise ModuleError(f"acc: db_extra: {exc}")
    columns = Columns(*(str(core.modparam(MODULE, name)) or default
                        for name, default in CORE_COLUMNS))
    _state.db = DbWriter(open_db(core, url, user=MODULE), columns,
                         [name for name, _ in _state.db_extra],
                         bool(int(core.modparam(MODULE, "acc_extra_nullable"))), time_mode,
                         [name for name, _ in _state.legs],
                         int(core.modparam(MODULE, "db_insert_mode")))
    core.provide(MODULE, _state.db)  # its work_in_progress: a draining worker waits for it
    _state.db_table_acc = str(core.modparam(MODULE, "db_table_acc")) or "acc"
    _state.db_table_missed = str(core.modparam(MODULE, "db_table_missed_calls")) or "missed_calls"


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


def record_for(ctx: MsgContext, code: str, reason: str, to_tag: str | None = None,
               extra: list[tuple[str, str]] | None = None) -> AccRecord:
    """A record of the request of ``ctx`` with the values of ``extra`` (log_extra by default)."""
    msg = ctx.msg
    return AccRecord(
        method=msg.method, from_tag=_tag(lambda: msg.from_.tag),
        to_tag=to_tag if to_tag is not None else _tag(lambda: msg.to.tag),
        call_id=_tag(lambda: msg.call_id), code=code, reason=reason, time=time.time(),
        extra=extra_values(_state.extra if extra is None else extra,
                           lambda spec: get_pv(ctx, spec)),
        legs=read_legs(_state.legs, lambda spec: get_pv(ctx, spec)) if _state.legs else ())


def _table(ctx: MsgContext, name: str) -> str:
    """A table name, evaluated for this message when it holds variables (acc_$time(year))."""
    return ctx.core.pv.format(name)(ctx) if "$" in name else name


def _write_db(ctx: MsgContext, code: str, reason: str, table: str,
              to_tag: str | None = None) -> int:
    if _state.db is None:
        return -1
    record = record_for(ctx, code, reason, to_tag, _state.db_extra)
    return 1 if _state.db.write(record, _table(ctx, table)) else -1


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
    code, reason = _comment(comment)
    return _write(record_for(ctx, code, reason), "request")


def _comment(comment: str) -> tuple[str, str]:
    code, _, reason = comment.strip().partition(" ")
    if not (code.isdigit() and len(code) == 3):
        return "", comment.strip()
    return code, reason.strip()


def acc_db_request(ctx: MsgContext, comment: str, table: str) -> int:
    """Account the current request to database table ``table`` now (a row with the db_extra
    columns); ``comment`` gives the code and reason ("403 Forbidden"). -1 without db_url."""
    if not ctx.msg.is_request:
        log.error("acc_db_request: the current message is a reply")
        return -1
    if _state.db is None:
        log.error("acc_db_request: no db_url is set")
        return -1
    code, reason = _comment(comment)
    return _write_db(ctx, code, reason, table or _state.db_table_acc)


def acc_request(ctx: MsgContext, comment: str, table: str) -> int:
    """Account the current request to the log and, with db_url, to database table ``table``."""
    rc = acc_log_request(ctx, comment)
    if rc > 0 and _state.db is not None:
        rc = acc_db_request(ctx, comment, table)
    return rc


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
    flags = int(tx.flags)
    request: SipMsg = tx.request

    def isset(flag: int) -> bool:
        return flag >= 0 and bool(flags & (1 << flag))

    failed_ok = status < 300 or isset(_state.failed_flag)
    invite_missed = status >= 300 and request.method == "INVITE"
    account = isset(_state.log_flag) and failed_ok
    missed = invite_missed and isset(_state.missed_flag)
    db_account = _state.db is not None and isset(_state.db_flag) and failed_ok
    db_missed = _state.db is not None and invite_missed and isset(_state.db_missed_flag)
    if core is None or not (account or missed or db_account or db_missed):
        return
    reason, reply_tag = _final_reply_parts(tx)
    to_tag: str | None = reply_tag
    if status < 300 and not tx.any_replied:
        # A 2xx the server sent itself (t_reply): Kamailio accounts the request's own To-tag
        # and the standard reason phrase, not those of the reply it built.
        to_tag, reason = None, _STANDARD_REASONS.get(status, "")
    ctx = core.new_context(request, tx.rcv)
    ctx.flags = flags
    # the AVPs the request route set live with the transaction (extra values, legs)
    ctx.avps = getattr(tx, "avps", ctx.avps)
    ctx.xavps = getattr(tx, "xavps", ctx.xavps)
    if account:
        _write(record_for(ctx, str(status), reason, to_tag), "acc")
    if missed:
        _write(record_for(ctx, str(status), reason, to_tag), "missed")
    if db_account:
        _write_db(ctx, str(status), reason, _state.db_table_acc, to_tag)
    if db_missed:
        _write_db(ctx, str(status), reason, _state.db_table_missed, to_tag)


_STANDARD_REASONS = {200: "OK", 202: "Accepted", 204: "No Notification"}


def _final_reply_parts(tx: Any) -> tuple[str, str]:
    """Reason phrase and To-tag of the final reply the transaction sent."""
    data = getattr(tx, "last_reply", None)  # the transaction is its server transaction
    if not data:
        return "", ""
    try:
        reply = parse_datagram(data)
        return reply.reason, reply.to.tag or ""
    except SipParseError:
        return "", ""
