"""What a parsed kamailio.cfg holds, before modules are loaded."""

from __future__ import annotations

from typing import Any

import attrs


@attrs.define
class ListenAddr:
    """One ``listen=proto:host:port`` (``advertise`` given with ``advertise host:port``)."""

    proto: str  # "udp" | "tcp" | "tls"
    host: str
    port: int = 5060
    advertise_host: str | None = None
    advertise_port: int | None = None
    name: str | None = None  # listen=... name "s1": a socket name for selecting it later
    virtual: bool = False  # listen=... virtual: a floating IP (accepted, not acted on)

    def advertise_names(self) -> list[str]:
        return [self.advertise_host.lower()] if self.advertise_host else []


@attrs.define
class Alias:
    """One ``alias=[proto:]host[:port]``: another name this server answers to (``is_myself``);
    no port or proto: any."""

    host: str
    port: int | None = None
    proto: str | None = None


@attrs.define
class Located:
    """A statement with the place it came from (after includes: the included file's name)."""

    file: str
    line: int


@attrs.define
class LoadModule(Located):
    name: str  # module name without path and .so: "sl", "tm", "app_lua"
    raw: str  # as written


@attrs.define
class ModParam(Located):
    module: str
    name: str
    value: Any  # int or str


@attrs.define
class RouteBlock(Located):
    """A native routing block, kept as source text for the native engine to compile."""

    kind: str  # request_route, route, reply_route, onreply_route, failure_route, branch_route,
    # branch_failure_route, onsend_route, event_route
    name: str | None  # route[NAME] / event_route[mod:ev]; None for request_route etc.
    body: str  # text between the braces
    body_line: int  # line of the text's first character in ``file``
    body_column: int = 1
    #: (file, line) of every line of ``body``; differs from body_line + n only when an
    #: include_file sits inside the block (Kamailio allows includes anywhere).
    line_map: list[tuple[str, int]] = attrs.Factory(list)

    def locate(self, body_line: int) -> tuple[str, int]:
        """(file, line) of the body's line ``body_line`` (1 = the line the body starts on)."""
        if 1 <= body_line <= len(self.line_map):
            return self.line_map[body_line - 1]
        return self.file, self.body_line + body_line - 1


@attrs.define
class CoreConfig:
    """Core parameters and module statements of one kamailio.cfg, in file order."""

    source: str = "<config>"
    debug: int = 2
    log_stderror: bool = True
    log_prefix: str | None = None
    log_facility: str = "LOG_DAEMON"
    log_engine_type: str | None = None  # "json": one JSON object per log line
    log_engine_data: str = ""  # the json engine's flags (Kamailio's letters)
    fork: bool = True
    children: int = 8
    auto_aliases: bool = True
    mpath: str | None = None
    memdbg: int | None = None  # accepted; meaningless in a Python server
    memlog: int | None = None  # accepted; meaningless in a Python server
    port: int = 5060
    listen: list[ListenAddr] = attrs.Factory(list)
    aliases: list[Alias] = attrs.Factory(list)
    cfgengine: str | None = None  # None, "native", "default" -> native engine
    cfgengine_line: Located | None = None
    #: kemi.request_route_callback and friends.
    kemi_callbacks: dict[str, str] = attrs.Factory(
        lambda: {
            "request_route_callback": "ksr_request_route",
            "reply_route_callback": "ksr_reply_route",
            "onsend_route_callback": "ksr_onsend_route",
            "event_route_callback": "",
            "pre_routing_callback": "",
            "received_route_callback": "",
        }
    )
    loadmodules: list[LoadModule] = attrs.Factory(list)
    modparams: list[ModParam] = attrs.Factory(list)
    routes: list[RouteBlock] = attrs.Factory(list)
    #: Kamailio core parameters accepted but not implemented: name -> value (one warning each).
    ignored: dict[str, Any] = attrs.Factory(dict)
    #: Every other core parameter kemi implements or stores, by name; also custom cfg vars
    #: (``group.name = value desc "text"``) and named ``flags``.
    extra: dict[str, Any] = attrs.Factory(dict)
    #: ``desc "text"`` of custom cfg vars, by ``group.name``.
    cfg_var_descriptions: dict[str, str] = attrs.Factory(dict)
    #: #!define names after preprocessing (for -A and include consistency).
    defines: dict[str, str] = attrs.Factory(dict)
    pid_file: str | None = None
    max_msg_size: int = 65535
    max_headers: int = 256
    max_header_line: int = 16384
    #: enable_tls=yes: TLS listens are served (the tls module must be loaded)
    enable_tls: bool = False
    tcp_max_connections: int = 2048
    tcp_connection_lifetime: int = 120
    tcp_msg_read_timeout: int = 20
    tcp_msg_data_timeout: int = 20
    #: tcp_accept_no_cl=yes: a message on a stream without Content-Length ends at its empty line
    tcp_accept_no_cl: bool = False
    #: onsend_route_reply=yes: onsend_route also runs for the replies forwarded or relayed
    onsend_route_reply: bool = False
    #: mhomed=1: a request relayed over UDP leaves from the UDP listen with the address the
    #: kernel would send from to its destination (``forwarding.mhomed``)
    mhomed: bool = False
    exit_timeout: int = 10
    watchdog_timeout: int = 10
    worker_rss_limit: int = 0

    @property
    def engine_name(self) -> str:
        """The engine to run: "native" when cfgengine is unset, "native" or "default"."""
        if self.cfgengine in (None, "", "native", "default"):
            return "native"
        return self.cfgengine
