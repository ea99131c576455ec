"""kemi's public API for plugin authors: everything a SIP module or a config engine needs.

Import from here (``from kemi_core.api import hookimpl, export, MsgContext``) and from
``kemi_core.sip`` (the sans-IO SIP message layer, public as a whole); tests may also use
``kemi_core.testing``. Every other module under ``kemi_core`` is internal: it may change in any
release without notice. What is listed in ``__all__`` below keeps its name and meaning within a
major version (see the stability promise in the plugin authors' guide, ``docs/``).

The names, by what they are for:

* writing a module: :data:`hookimpl`, :func:`export`, :class:`KemiExport`, :class:`ParamKind`,
  :class:`ReturnKind`, :class:`MsgContext`, :class:`Core` (with ``declare_param``/``modparam``,
  ``add_rpc``, ``add_cfg_function``, ``counter``, ``registry``), :class:`CfgFunction`,
  :class:`Counter` and :class:`Gauge` (statistics shared by every process), services modules
  offer each other (``core.provide`` / ``core.require`` with :class:`TmApi`, :class:`RrApi`,
  :class:`SlApi`);
* writing an engine: :class:`Engine`, :class:`EngineSpec`, :class:`ScriptExit`,
  :class:`ScriptDrop`, the default callback names (``REQUEST_ROUTE`` ...);
* errors: :class:`ModuleError` (refuse loading or start-up), :class:`ConfigError` (a config
  problem, ``file:line: reason``), :class:`ScriptError` (a routing script problem);
* pseudo-variables: ``core.pv`` (:class:`PvTable`: ``register``, ``get``, ``set``, ``spec``,
  ``format``), :func:`get_pv` / :func:`set_pv` for the message's core;
* SIP helpers modules share: destinations, ``;received``/``;rport`` stamping, stateless forward;
* databases (``db_url``): :func:`open_db`, :class:`Database`, :class:`DbError` and the rest of
  :mod:`kemi_core.db` as ``db`` (``db.tables.LOCATION``, ``db.register_backend`` ...);
* code that may block the worker (a socket exchange, a sleep, a child process): call
  :func:`about_to_wait` first, so the UDP sends held for the event go out before it;
* time and timers: ``core.clock`` (a :class:`Clock`: ``now()``, ``wall()``, ``call_at``,
  ``call_later``, ``call_every`` returning a :class:`Timer`); tests advance a
  :class:`VirtualClock`.
"""

from __future__ import annotations

from kemi_core import db, hookimpl
from kemi_core.config.model import Alias, CoreConfig, ListenAddr
from kemi_core.config.subst import SubstSyntaxError, split_sed
from kemi_core.core_exports.forward import forward_to
from kemi_core.core_exports.log import (
    ALERT,
    BUG,
    NOTICE,
    SCRIPT_FAULT,
    is_script_fault,
    kamailio_level,
    script_log,
)
from kemi_core.counters import Counter, Gauge
from kemi_core.db import Database, DbError, DbUnavailable, DbVersionError, open_db
from kemi_core.engine import (
    EVENT_ROUTE,
    ONSEND_ROUTE,
    REPLY_ROUTE,
    REQUEST_ROUTE,
    Engine,
    EngineSpec,
    ScriptDrop,
    ScriptExit,
    flow_exports,
    normalize_bool,
    normalize_result,
    normalize_xval,
    script_exit,
)
from kemi_core.engine_module import EngineApp, app_hooks, check_script, read_script
from kemi_core.errors import ConfigError, KemiError, ModuleError, ScriptError
from kemi_core.forwarding import (
    MAIN_BRANCH,
    PENDING,
    SOCKET_EDIT,
    Resolver,
    SocketEdit,
    apply_via,
    branch_rank,
    default_local,
    for_socket,
    forced_local,
    forward_reply,
    listen_for,
    our_via,
    parse_socket,
    rank_mark,
    received_via,
    reply_destination,
    send_local,
    send_to,
    stamp_received,
    uri_destination,
    uri_target,
    via_params,
    via_reply_destination,
    via_sent_by,
)
from kemi_core.kemi.binding import (
    PASS_ASCII,
    PASS_BOOL,
    PASS_INT,
    PASS_INT32,
    PASS_NONE,
    PASS_STR,
    BindingRules,
    ExportTable,
    api_list,
    bind_export,
    count_text,
    from_script_text,
    script_exports,
    to_script_text,
)
from kemi_core.kemi.exports import (
    MAX_PARAMS,
    ExportError,
    KemiExport,
    ParamKind,
    ReturnKind,
    export,
    message_fact,
)
from kemi_core.kemi.registry import KemiRegistry
from kemi_core.metrics_http import serve_metrics
from kemi_core.pv import PvDef, PvError, PvReadOnlyError, PvSpec, PvTable, PvValue, get_pv, set_pv
from kemi_core.rpc.paths import prepare_runtime_path, runtime_path
from kemi_core.rpc.protocol import RpcFault
from kemi_core.runtime.clock import Clock, Timer, VirtualClock, drive_with_loop
from kemi_core.runtime.context import Branch, MsgContext, RecvInfo, RouteType
from kemi_core.runtime.core import CfgFunction, Core, ParamSpec, RpcCommand
from kemi_core.services import RrApi, SlApi, TmApi
from kemi_core.shared import (
    DELETE,
    KEEP,
    UNCHANGED,
    SharedStore,
    SharedStoreError,
    SharedTable,
    shared_store,
)
from kemi_core.shared.dirs import pid_alive
from kemi_core.shared.shmtable import ShmTable
from kemi_core.sip import (
    ParseLimits,
    SipMsg,
    SipParseError,
    SipUri,
    build_reply,
    parse_datagram,
    parse_uri,
)
from kemi_core.stats import prometheus_text
from kemi_core.transport.outbox import about_to_wait
from kemi_core.transport.stream import (
    HttpExchange,
    HttpService,
    StreamConnection,
    StreamReader,
    TlsService,
    connection_of,
    http_exchange,
)
from kemi_core.transport.tlsio import TlsSession

__all__ = [
    "ALERT",
    "BUG",
    "EVENT_ROUTE",
    "MAX_PARAMS",
    "NOTICE",
    "ONSEND_ROUTE",
    "REPLY_ROUTE",
    "REQUEST_ROUTE",
    "SCRIPT_FAULT",
    "Alias",
    "Branch",
    "CfgFunction",
    "Clock",
    "ConfigError",
    "Counter",
    "Core",
    "CoreConfig",
    "Database",
    "DbError",
    "DbUnavailable",
    "DbVersionError",
    "Engine",
    "EngineSpec",
    "ExportError",
    "Gauge",
    "KemiError",
    "KemiExport",
    "KemiRegistry",
    "ListenAddr",
    "ModuleError",
    "MsgContext",
    "ParamKind",
    "ParamSpec",
    "ParseLimits",
    "PvDef",
    "PvError",
    "PvReadOnlyError",
    "PvSpec",
    "PvTable",
    "PvValue",
    "RecvInfo",
    "ReturnKind",
    "RouteType",
    "RpcCommand",
    "RpcFault",
    "RrApi",
    "SlApi",
    "ScriptDrop",
    "ScriptError",
    "ScriptExit",
    "SipMsg",
    "SipParseError",
    "SipUri",
    "SubstSyntaxError",
    "Timer",
    "VirtualClock",
    "TmApi",
    "PENDING",
    "Resolver",
    "SOCKET_EDIT",
    "SocketEdit",
    "apply_via",
    "for_socket",
    "default_local",
    "forced_local",
    "forward_reply",
    "our_via",
    "rank_mark",
    "branch_rank",
    "MAIN_BRANCH",
    "parse_socket",
    "send_local",
    "send_to",
    "listen_for",
    "uri_target",
    "via_params",
    "via_sent_by",
    "about_to_wait",
    "build_reply",
    "db",
    "drive_with_loop",
    "export",
    "message_fact",
    "prometheus_text",
    "serve_metrics",
    "flow_exports",
    "script_exit",
    "forward_to",
    "get_pv",
    "hookimpl",
    "is_script_fault",
    "kamailio_level",
    "normalize_bool",
    "normalize_result",
    "normalize_xval",
    "open_db",
    "parse_datagram",
    "parse_uri",
    "received_via",
    "reply_destination",
    "script_log",
    "set_pv",
    "split_sed",
    "stamp_received",
    "uri_destination",
    "via_reply_destination",
]

# State shared by worker processes (docs/shared-store.md).
__all__ += ["DELETE", "KEEP", "UNCHANGED", "SharedStore", "SharedStoreError", "SharedTable",
            "ShmTable", "shared_store"]
# Whether a process still runs (records it left in a shared table are stale when it does not).
__all__ += ["pid_alive"]
# Runtime files (FIFOs, sockets) of a module: where a relative name goes (kemi_core.rpc.paths).
__all__ += ["prepare_runtime_path", "runtime_path"]
# Stream connections (TCP, TLS and what modules make of them: HTTP, WebSocket), the services
# the tls and xhttp modules offer the transport, a TLS session's details.
__all__ += ["HttpExchange", "HttpService", "StreamConnection", "StreamReader", "TlsService",
            "TlsSession", "connection_of", "http_exchange"]
# What every config engine does to let a script call KEMI exports (kemi_core.kemi.binding):
# name lookup (ExportTable), generated callables per engine's value rules (bind_export).
__all__ += ["PASS_ASCII", "PASS_BOOL", "PASS_INT", "PASS_INT32", "PASS_NONE", "PASS_STR",
            "BindingRules", "ExportTable", "api_list", "bind_export", "count_text",
            "from_script_text", "script_exports", "to_script_text"]
# An engine module's glue (kemi_core.engine_module): its hooks, start-up check, script reading.
__all__ += ["EngineApp", "app_hooks", "check_script", "read_script"]
