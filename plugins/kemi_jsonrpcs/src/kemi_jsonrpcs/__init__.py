"""jsonrpcs.so: Kamailio's JSON-RPC server over a FIFO file and a datagram socket.

The commands are the control socket's (``kemi rpc``, kamcmd): this module only adds Kamailio's
jsonrpcs transports and answer format, so clients written for Kamailio (kamcli's jsonrpc mode,
scripts writing to ``kamailio_rpc.fifo``) work unchanged. ``transport`` picks them (0 all, 2
FIFO, 4 datagram, 6 both: the default); relative paths are in kemi's runtime directory, the
control socket's (Kamailio's rundir; /run/kemi as root, else the user's own, never Kamailio's
/run/kamailio). The HTTP transport needs xhttp, which kemi does not have.

Scripts run commands with ``jsonrpc_exec(doc)`` / ``KSR.jsonrpcs.exec(doc)`` and read the
answer from ``$jsonrpl(code)``, ``$jsonrpl(text)`` and ``$jsonrpl(body)``.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable
from typing import Any

from kemi_core.api import (
    CfgFunction,
    Core,
    KemiExport,
    ModuleError,
    MsgContext,
    ReturnKind,
    export,
    hookimpl,
    runtime_path,
)
from kemi_jsonrpcs.channels import DatagramChannel, FifoChannel, datagram_socket, make_fifo
from kemi_jsonrpcs.protocol import answer, parse_request, render

log = logging.getLogger("kemi.jsonrpcs")

MODULE = "jsonrpcs"
HTTP, FIFO, DGRAM = 1, 2, 4
_REPLY = "jsonrpl"  # ctx.extra key: (code, text, body) of the last jsonrpc_exec


class _State:
    core: Core | None = None
    pretty = True
    channels: list[Any] = []


_state = _State()


def exports() -> list[KemiExport]:
    return [
        export(MODULE, "dispatch", dispatch, ""),
        export(MODULE, "exec", jsonrpc_exec, "s"),
        export(MODULE, "execx", jsonrpc_execx, "s"),
        export(MODULE, "response", response, "", ReturnKind.XVAL),
    ]


@hookimpl
def mod_register(core: Core) -> None:
    p = core.declare_param
    p(MODULE, "pretty_format", int, 1, doc="1: answers laid out one member a line (cJSON style)")
    p(MODULE, "transport", int, FIFO | DGRAM, doc="0 all, 1 HTTP (needs xhttp), 2 FIFO, 4 datagram")
    p(MODULE, "fifo_name", str, "kamailio_rpc.fifo", doc="FIFO file (relative: in kemi's runtime directory)")
    p(MODULE, "fifo_mode", int, 0o660, doc="permissions of the FIFO file")
    p(MODULE, "fifo_group", str, "", doc="group of the FIFO file (name or id)")
    p(MODULE, "fifo_user", str, "", doc="owner of the FIFO file (name or id)")
    p(MODULE, "fifo_reply_dir", str, "/tmp/", doc="directory of the clients' reply FIFOs")
    p(MODULE, "dgram_socket", str, "kamailio_rpc.sock",
      doc="unix datagram socket path (relative: in kemi's runtime directory) or udp:host:port")
    p(MODULE, "dgram_workers", int, 1, doc="accepted: the main process serves the socket")
    p(MODULE, "dgram_mode", int, 0o660, doc="permissions of the unix socket file")
    p(MODULE, "dgram_group", str, "", doc="group of the unix socket file (name or id)")
    p(MODULE, "dgram_user", str, "", doc="owner of the unix socket file (name or id)")
    p(MODULE, "dgram_timeout", int, 2000, doc="accepted for compatibility (ms)")
    core.add_cfg_function(CfgFunction(MODULE, "jsonrpc_dispatch", dispatch, 0, 0, (),
                                      dispatch.__doc__ or ""))
    core.add_cfg_function(CfgFunction(MODULE, "jsonrpc_exec", _cfg_exec, 1, 1, (),
                                      jsonrpc_exec.__doc__ or ""))
    core.pv.register("jsonrpl", _pv_jsonrpl, takes_arg=True,
                doc="$jsonrpl(code|text|body): the answer of the last jsonrpc_exec")
    core.add_rpc("jsonrpc.echo", lambda core, params: params,
                 "return the parameters (a transport check)")


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    _state.core = core
    _state.pretty = bool(core.modparam(MODULE, "pretty_format"))
    transport = int(core.modparam(MODULE, "transport"))
    if transport == 0:
        transport = FIFO | DGRAM
    elif transport & HTTP:
        log.warning("jsonrpcs: the HTTP transport needs the xhttp module, which kemi does not "
                    "have: not enabled")
    # Paths are checked here, so a bad one stops the start; the FIFO and the socket are made
    # when the main process starts serving them, so loading the config (kemi check, in-process
    # tests) never replaces those of a server already running.
    opened: list[Any] = []
    makers: list[Callable[[], Any]] = []
    if transport & FIFO:
        path = _in_run_dir(str(core.modparam(MODULE, "fifo_name")))
        _check_place(path, stat.S_ISFIFO, "a FIFO")
        mode = int(core.modparam(MODULE, "fifo_mode"))
        owner = (str(core.modparam(MODULE, "fifo_user")), str(core.modparam(MODULE, "fifo_group")))
        reply_dir = str(core.modparam(MODULE, "fifo_reply_dir"))

        def make_fifo_channel() -> Any:
            make_fifo(path, mode)
            _chown(path, *owner)
            return FifoChannel(path, reply_dir, _respond)
        makers.append(make_fifo_channel)
    if transport & DGRAM:
        spec = str(core.modparam(MODULE, "dgram_socket"))
        is_udp = spec.lower().startswith(("udp:", "udp4:", "udp6:"))
        if not is_udp and not spec.lower().startswith("unix:"):
            spec = _in_run_dir(spec)
        if not is_udp:
            _check_place(spec[5:] if spec.lower().startswith("unix:") else spec, stat.S_ISSOCK,
                         "a socket")
        dmode = int(core.modparam(MODULE, "dgram_mode"))
        downer = (str(core.modparam(MODULE, "dgram_user")), str(core.modparam(MODULE, "dgram_group")))

        def make_dgram_channel() -> Any:
            sock = datagram_socket(spec, dmode)
            if not is_udp:
                _chown(spec[5:] if spec.lower().startswith("unix:") else spec, *downer)
            return DatagramChannel(sock, spec, _respond)
        makers.append(make_dgram_channel)

    def serve(loop: Any) -> None:
        for make in makers:
            try:
                channel = make()
            except ModuleError as exc:
                log.error("%s", exc)
                continue
            channel.attach(loop)
            opened.append(channel)
    _state.channels = opened
    core.main_loop_hooks.append(serve)


def _check_place(path: str, is_kind: Callable[[int], bool], kind: str) -> None:
    """The directory can hold ``path`` and nothing else is there already."""
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, exist_ok=True)
        if os.path.lexists(path) and not is_kind(os.lstat(path).st_mode):
            raise ModuleError(f"jsonrpcs: {path} exists and is not {kind}")
    except OSError as exc:
        raise ModuleError(f"jsonrpcs: cannot use {path}: {exc.strerror}")
    if not os.access(directory, os.W_OK):
        raise ModuleError(f"jsonrpcs: cannot create {path}: its directory is not writable")


@hookimpl
def mod_destroy() -> None:
    for ch in _state.channels:
        ch.close()
    _state.channels = []


def _in_run_dir(path: str) -> str:
    return runtime_path(path)


def _chown(path: str, user: str, group: str) -> None:
    if not user and not group:
        return
    import grp
    import pwd

    try:
        uid = -1 if not user else (int(user) if user.isdigit() else pwd.getpwnam(user).pw_uid)
        gid = -1 if not group else (int(group) if group.isdigit() else grp.getgrnam(group).gr_gid)
        os.chown(path, uid, gid)
    except (KeyError, OSError) as exc:
        raise ModuleError(f"jsonrpcs: cannot set the owner of {path}: {exc}")


def _respond(request: dict[str, Any]) -> bytes:
    if _state.core is None:
        raise ModuleError("jsonrpcs is not initialised")
    return render(answer(_state.core, request), _state.pretty)


# ---- script functions -------------------------------------------------------------------
def dispatch(ctx: MsgContext) -> int:
    """Answer a JSON-RPC request received over HTTP (xhttp's event route): kemi has no xhttp
    module, so this always fails with -1."""
    log.error("jsonrpc_dispatch: no HTTP transport (the xhttp module is not available in kemi)")
    return -1


def jsonrpc_exec(ctx: MsgContext, cmd: str) -> int:
    """Run the JSON-RPC request document ``cmd``; its answer is in $jsonrpl(code), (text)
    and (body). -1 when ``cmd`` is not a JSON-RPC request."""
    request = parse_request(cmd.encode())
    if request is None or _state.core is None:
        log.error("jsonrpc_exec: not a JSON-RPC request: %r", cmd[:80])
        return -1
    doc = answer(_state.core, request)
    if "error" in doc:
        code, text = int(doc["error"]["code"]), str(doc["error"]["message"])
    else:
        code, text = 200, "OK"
    ctx.extra[_REPLY] = (code, text, render(doc, _state.pretty).decode())
    return 1


def jsonrpc_execx(ctx: MsgContext, cmd: str) -> int:
    """jsonrpc_exec for a document holding variables: they are evaluated first."""
    return jsonrpc_exec(ctx, ctx.core.pv.format(cmd)(ctx) if "$" in cmd else cmd)


def response(ctx: MsgContext) -> str | None:
    """The answer body of the last jsonrpc_exec of this message (None before one)."""
    last = ctx.extra.get(_REPLY)
    return None if last is None else str(last[2])


def _cfg_exec(ctx: MsgContext, cmd: str) -> int:
    return jsonrpc_execx(ctx, cmd)


def _pv_jsonrpl(ctx: MsgContext, key: str) -> Any:
    last = ctx.extra.get(_REPLY)
    if last is None:
        return None
    return {"code": last[0], "text": last[1], "body": last[2]}.get(key.strip())


def result_of(body: str) -> Any:
    """The ``result`` of an answer body (for tests and tools)."""
    return json.loads(body).get("result")
