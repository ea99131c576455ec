"""xhttp.so: HTTP requests on the SIP TCP and TLS listeners, handled by the routing script
(Kamailio's xhttp module).

A connection whose first line is an HTTP request (``GET /ws HTTP/1.1``) is read as HTTP
(h11); each request runs ``event_route[xhttp:request]`` in a native config, or the KEMI
function named by ``modparam("xhttp", "event_callback", "ksr_xhttp_event")`` with the event
name as its argument. The request reads like a SIP message: ``$rm``, ``$hu`` (the URL),
``$hdr(Upgrade)``, ``KSR.hdr.get("Host")``; the script answers with ``xhttp_reply`` or hands the
connection to the websocket module (``KSR.websocket.handle_handshake()``). ``url_skip`` and
``url_match`` (regular expressions on the URL) choose the requests the event sees; the others
get 404.
"""

from __future__ import annotations

import re
from typing import Any

from kemi_core.api import (
    CfgFunction,
    Core,
    KemiExport,
    ModuleError,
    MsgContext,
    PvValue,
    StreamConnection,
    export,
    hookimpl,
)
from kemi_xhttp.exchange import HttpReader, exchange_of, url_filter

MODULE = "xhttp"


class XhttpService:
    """The ``http`` service the transport asks for connections that speak HTTP."""

    def __init__(self, core: Core, url_skip: str, url_match: str, callback: str) -> None:
        self.core = core
        self.should_run = url_filter(url_skip, url_match)
        self.callback = callback

    def reader(self, conn: StreamConnection) -> HttpReader:
        return HttpReader(self.core, conn, self.core.config.max_msg_size, self.should_run,
                          self.callback)


# ---- KEMI functions -------------------------------------------------------------------------
def xhttp_reply(ctx: MsgContext, code: int, reason: str, ctype: str, body: str) -> int:
    """Answer the HTTP request being handled: status ``code`` and ``reason``, a body of type
    ``ctype`` (no Content-Type when empty). 1 sent, -1 not an HTTP request or answered
    already."""
    exchange = exchange_of(ctx)
    if exchange is None:
        ctx.core.log.error("xhttp_reply: not handling an HTTP request")
        return -1
    close = bool(ctx.extra.get("reply_close"))
    ok = exchange.reply(int(code), reason, ctype, body.encode("utf-8", "surrogateescape"), close)
    return 1 if ok else -1


def exports() -> list[KemiExport]:
    return [export(MODULE, "xhttp_reply", xhttp_reply, "isss")]


def _hu(ctx: MsgContext) -> PvValue:
    """The URL of the HTTP request being handled."""
    exchange = exchange_of(ctx)
    return exchange.msg.ruri if exchange is not None else None


def _cfg_reply(ctx: MsgContext, code: str | int, reason: str, ctype: str, body: str) -> int:
    fmt = ctx.core.pv.format
    values = [fmt(v)(ctx) if isinstance(v, str) and "$" in v else v
              for v in (code, reason, ctype, body)]
    try:
        status = int(values[0])
    except ValueError:
        ctx.core.log.error("xhttp_reply: bad status code %r", values[0])
        return -1
    return xhttp_reply(ctx, status, str(values[1]), str(values[2]), str(values[3]))


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "url_skip", str, "",
                       doc="regular expression: URLs the event does not see (404)")
    core.declare_param(MODULE, "url_match", str, "",
                       doc="regular expression: only matching URLs reach the event")
    core.declare_param(MODULE, "event_callback", str, "",
                       doc="KEMI function run for xhttp:request (gets the event name)")
    core.pv.register("hu", _hu, doc="URL of the HTTP request (xhttp)")
    core.add_cfg_function(CfgFunction(MODULE, "xhttp_reply", _cfg_reply, 4, 4,
                                      doc="answer the HTTP request"))


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    params: dict[str, Any] = {n: str(core.modparam(MODULE, n))
                              for n in ("url_skip", "url_match", "event_callback")}
    for name in ("url_skip", "url_match"):
        try:
            re.compile(params[name])
        except re.error as exc:
            raise ModuleError(f"xhttp: {name} {params[name]!r} is not a valid regular "
                              f"expression: {exc}") from None
    core.provide("http", XhttpService(core, params["url_skip"], params["url_match"],
                                      params["event_callback"]))
