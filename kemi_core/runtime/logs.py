"""Logging set-up: Kamailio's ``debug`` levels mapped onto Python logging, to stderr.

Two formats, as Kamailio's ``log_engine_type`` offers them: text (the default,
`` pid LEVEL: <component> message``) and ``json`` (one JSON object per line). A JSON line carries
the SIP context of the message the process is handling: the dispatcher sets
``LOG_CONTEXT.msg`` once per message (one attribute store) and the formatter reads Call-ID,
method and CSeq from it only when a line is actually written.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import Any

NOTICE = 25
logging.addLevelName(NOTICE, "NOTICE")

#: Kamailio's numeric levels (L_ALERT -5 ... L_DBG 3) -> Python levels.
KAMAILIO_LEVELS = {-5: logging.CRITICAL, -4: logging.CRITICAL, -3: logging.CRITICAL,
                   -2: logging.CRITICAL, -1: logging.ERROR, 0: logging.WARNING, 1: NOTICE,
                   2: logging.INFO, 3: logging.DEBUG}

#: log_engine_data flags kemi acts on (Kamailio's letters): c Call-ID field (kemi adds the SIP
#: context whenever a message is being handled), a/A add / leave out the log prefix field,
#: M strip line ends from the message, N no newline after each JSON object.
JSON_FLAGS = frozenset("caAMN")


class SipLogContext:
    """What the process is doing, for log lines: its rank and the SIP message at hand."""

    __slots__ = ("msg", "prefix", "prefix_format", "rank")

    def __init__(self) -> None:
        self.msg: Any = None  # the SipMsg being handled, or None
        #: log_prefix evaluated for that message ("" when none is configured or no message)
        self.prefix = ""
        #: the compiled log_prefix (the dispatcher's; None: none configured)
        self.prefix_format: Any = None
        self.rank = 0  # 0 = main process, 1..N = workers


#: The one context of this process (set by the worker and the dispatcher).
LOG_CONTEXT = SipLogContext()


def python_level(debug: int) -> int:
    """The Python logging level that shows what Kamailio's ``debug=N`` shows."""
    if debug >= 3:
        return logging.DEBUG
    return KAMAILIO_LEVELS.get(debug, logging.CRITICAL)


def module_of(logger_name: str) -> str:
    """``kemi.tm`` -> ``tm``; the core's own loggers (``kemi``) -> ``core``."""
    if logger_name.startswith("kemi."):
        return logger_name[5:]
    return "core" if logger_name == "kemi" else logger_name


def sip_fields(msg: Any) -> dict[str, Any]:
    """Call-ID, method and CSeq number (and a reply's status) of ``msg``, as far as they parse."""
    out: dict[str, Any] = {}
    try:
        out["callid"] = msg.call_id
        cseq = msg.cseq
        out["method"] = msg.method if msg.is_request else cseq.method
        out["cseq"] = cseq.number
        if not msg.is_request:
            out["status"] = msg.status
    except Exception:  # a malformed header: log what was readable
        pass
    return out


class PrefixFilter(logging.Filter):
    """Gives each record the log prefix of the message being handled (``%(log_prefix)s``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.log_prefix = LOG_CONTEXT.prefix
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, idx (process rank), pid, level, module, file, line,
    function, the SIP context when a message is being handled, logprefix, message."""

    def __init__(self, flags: str = "", prefix: str | None = None) -> None:
        super().__init__()
        self.strip_eol = "M" in flags
        self.prefix = None if "A" in flags else prefix

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if self.strip_eol:
            message = message.rstrip("\r\n")
        obj: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds"),
            "idx": LOG_CONTEXT.rank,
            "pid": record.process,
            "level": record.levelname,
            "module": module_of(record.name),
            "file": record.filename,
            "line": record.lineno,
            "function": record.funcName,
        }
        msg = LOG_CONTEXT.msg
        if msg is not None:
            obj.update(sip_fields(msg))
        prefix = getattr(record, "log_prefix", "") if self.prefix is not None else ""
        if prefix:
            obj["logprefix"] = prefix
        obj["message"] = message
        if record.exc_info:
            obj["exception"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False, default=str)


def parse_log_engine(spec: str) -> tuple[str, str]:
    """``--log-engine=name[:data]`` -> (name, data)."""
    name, _, data = spec.partition(":")
    return name.strip(), data


def setup_logging(debug: int, prefix: str | None = None, stream: object = None,
                  engine: str | None = None, engine_data: str = "") -> None:
    """Log to stderr in Kamailio's style: text, or JSON lines when ``engine`` is "json"."""
    if engine not in (None, "", "json"):
        raise ValueError(f"log_engine_type {engine!r}: kemi knows the json engine (or none)")
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    # Kamailio's log_prefix: evaluated once per received message (the dispatcher sets
    # LOG_CONTEXT.prefix), printed after the level on every line logged while handling it.
    handler.addFilter(PrefixFilter())
    if engine == "json":
        handler.setFormatter(JsonFormatter(engine_data, prefix))
        if "N" in engine_data:
            handler.terminator = ""
    else:
        fmt = " %(process)d %(levelname)s: %(log_prefix)s<%(name)s> %(message)s"
        handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(python_level(debug))
    unknown = sorted(set(engine_data) - JSON_FLAGS) if engine == "json" else []
    if unknown:
        logging.getLogger("kemi").warning("log_engine_data: flags %s are not supported (known: "
                                          "%s)", "".join(unknown), "".join(sorted(JSON_FLAGS)))


def reopen_log_files() -> int:
    """Reopen every log file a handler writes to (after logrotate moved it: SIGHUP).
    Returns how many were reopened; logging to stderr has none."""
    count = 0
    for handler in list(logging.getLogger().handlers):
        if isinstance(handler, logging.FileHandler):
            handler.acquire()
            try:
                if handler.stream is not None:
                    handler.stream.close()
                handler.stream = handler._open()
                count += 1
            finally:
                handler.release()
    return count
