"""log_engine_type="json": one JSON object per line, with the SIP context of the message at hand."""

from __future__ import annotations

import io
import json
import logging
import textwrap
from collections.abc import Iterator

import pytest

from kemi_core.config import parse_config_text
from kemi_core.errors import ConfigError
from kemi_core.runtime.context import MsgContext, RecvInfo
from kemi_core.runtime.dispatch import Dispatcher
from kemi_core.runtime.logs import LOG_CONTEXT, parse_log_engine, setup_logging
from kemi_core.sip import ParseLimits, parse_datagram
from kemi_core.testing.capture import offline_core
from kemi_core.testing.udp_client import request

RCV = RecvInfo("udp", "127.0.0.1", 40000, "127.0.0.1", 5060)


class RouteEngine:
    """An engine whose request route is a Python callable."""

    name = "route"

    def __init__(self, route) -> None:  # type: ignore[no-untyped-def]
        self.route = route

    def load(self) -> None: ...

    def reload(self) -> None: ...

    def has_route(self, name: str) -> bool:
        return False

    def run(self, name: str, ctx: MsgContext) -> int:
        return int(self.route(ctx))


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging(2, "{pfx} ", stream=out, engine="json", engine_data="cM")
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    LOG_CONTEXT.msg = None


def _objects(out: io.StringIO) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_lines_are_json_with_the_sip_context(json_lines: io.StringIO) -> None:
    log = logging.getLogger("kemi.tm")
    log.info("no message yet\n")
    LOG_CONTEXT.msg = parse_datagram(request("OPTIONS", "sip:a@127.0.0.1", 5070, cseq=7,
                                             call_id="cid-1@x"))
    LOG_CONTEXT.prefix = "{1 7 OPTIONS cid-1@x} "  # what the dispatcher evaluated for it
    log.error('quoted "text" and ünïcode')
    LOG_CONTEXT.prefix = ""
    LOG_CONTEXT.msg = parse_datagram(b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n"
                                     b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: cid-2@x\r\n"
                                     b"CSeq: 3 INVITE\r\nContent-Length: 0\r\n\r\n")
    logging.getLogger("kemi").warning("a reply")
    first, second, third = _objects(json_lines)
    assert first["message"] == "no message yet" and "callid" not in first  # M: no line end
    assert {"time", "idx", "pid", "level", "module", "file", "line", "function"} <= first.keys()
    assert first["level"] == "INFO" and first["module"] == "tm" and "logprefix" not in first
    assert second["logprefix"] == "{1 7 OPTIONS cid-1@x} "  # the prefix of the message at hand
    assert (second["callid"], second["method"], second["cseq"]) == ("cid-1@x", "OPTIONS", 7)
    assert second["message"] == 'quoted "text" and ünïcode' and second["level"] == "ERROR"
    assert (third["callid"], third["method"], third["cseq"], third["status"]) == (
        "cid-2@x", "INVITE", 3, 180)
    assert third["module"] == "core"


def test_the_dispatcher_sets_and_clears_the_context(json_lines: io.StringIO) -> None:
    core, _ = offline_core()

    def route(ctx):  # type: ignore[no-untyped-def]
        logging.getLogger("kemi.script").info("in the route")
        raise RuntimeError("script bug")

    core.engine = RouteEngine(route)
    disp = Dispatcher(core, ParseLimits())
    disp.on_data(request("MESSAGE", "sip:a@127.0.0.1", 5070, call_id="cid-3@x", cseq=2), RCV)
    logging.getLogger("kemi").info("after")
    objs = _objects(json_lines)
    in_route = next(o for o in objs if o["message"] == "in the route")
    assert (in_route["callid"], in_route["method"], in_route["cseq"]) == ("cid-3@x", "MESSAGE", 2)
    error = next(o for o in objs if o["level"] == "ERROR")
    # one line naming the error and where it was raised (no traceback: docs/operating.md)
    assert "RuntimeError: script bug" in error["message"] and error["callid"] == "cid-3@x"
    assert "test_json_logs.py" in error["message"] and "exception" not in error
    assert "callid" not in objs[-1] and LOG_CONTEXT.msg is None


def test_text_stays_the_default() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    saved = list(root.handlers)
    try:
        setup_logging(2, stream=out)
        logging.getLogger("kemi.x").info("plain")
    finally:
        root.handlers[:] = saved
    assert out.getvalue().endswith(" INFO: <kemi.x> plain\n")


def test_config_and_command_line_forms() -> None:
    cfg = parse_config_text(textwrap.dedent("""
        log_engine_type="json"
        log_engine_data="cM"
    """), source="t.cfg")
    assert (cfg.log_engine_type, cfg.log_engine_data) == ("json", "cM")
    with pytest.raises(ConfigError, match="t.cfg:1:17: unknown log engine 'xml'"):
        parse_config_text('log_engine_type="xml"\n', source="t.cfg")
    assert parse_log_engine("json:cM") == ("json", "cM")
    assert parse_log_engine("json") == ("json", "")
    with pytest.raises(ValueError, match="json engine"):
        setup_logging(2, engine="syslog-ng")
