"""corex.so: core extensions: append_branch, has_ruri_user, has_user_agent, extended flags
(setxflag ...), socket selection (set_send_socket ...), send_data/sendx/send_udp/send_tcp,
file_read/file_write, forward_reply, and the corex.list_sockets / corex.list_aliases RPCs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kemi_core.api import (
    CfgFunction,
    Core,
    KemiExport,
    MsgContext,
    ReturnKind,
    export,
    hookimpl,
)
from kemi_corex import functions as f

MODULE = "corex"

#: KEMI exports (Kamailio 5.6's KSR.corex.*): name, function, parameter letters.
EXPORTS: list[tuple[str, Callable[..., Any], str]] = [
    ("append_branch", f.append_branch, ""),
    ("append_branch_uri", f.append_branch_uri, "s"),
    ("append_branch_uri_q", f.append_branch_uri_q, "ss"),
    ("setxflag", f.setxflag, "i"),
    ("resetxflag", f.resetxflag, "i"),
    ("isxflagset", f.isxflagset, "i"),
    ("set_send_socket", f.set_send_socket, "s"),
    ("set_send_socket_name", f.set_send_socket_name, "s"),
    ("set_recv_socket", f.set_recv_socket, "s"),
    ("set_recv_socket_name", f.set_recv_socket_name, "s"),
    ("set_source_address", f.set_source_address, "s"),
    ("has_ruri_user", f.has_ruri_user, ""),
    ("has_user_agent", f.has_user_agent, ""),
    ("send_data", f.send_data, "ss"),
    ("sendx", f.sendx, "sss"),
    ("is_faked_msg", f.is_faked_msg, ""),
    ("file_write", f.file_write, "ss"),
    ("is_socket_name", f.is_socket_name, "s"),
]


def _dyn(fn: Callable[..., int]) -> Callable[..., int]:
    """A cfg function whose string parameters may hold variables: evaluated first."""
    def call(ctx: MsgContext, *args: Any) -> int:
        return fn(ctx, *(ctx.core.pv.format(a)(ctx) if isinstance(a, str) and "$" in a else a
                         for a in args))
    call.__doc__ = fn.__doc__
    return call


def _send_udp(ctx: MsgContext, dest: str | None = None) -> int:
    """send_udp([host[:port]]): the message as received, over UDP, to host or $du/R-URI."""
    return f.send_raw(ctx, "udp", dest)


def _send_tcp(ctx: MsgContext, dest: str | None = None) -> int:
    """send_tcp([host[:port]]): the message as received, over TCP, to host or $du/R-URI."""
    return f.send_raw(ctx, "tcp", dest)


def _file_read(ctx: MsgContext, path: str, var: str) -> int:
    return f.file_read_into(ctx, ctx.core.pv.format(path)(ctx) if "$" in path else path, var)


_file_read.__doc__ = f.file_read_into.__doc__

#: kamailio.cfg functions: name, function, min args, max args, int positions.
#: (append_branch is a core statement in kamailio.cfg, with the same meaning; has_ruri_user and
#: has_user_agent are KEMI-only, as in Kamailio.)
CFG: list[tuple[str, Callable[..., int], int, int, tuple[int, ...]]] = [
    ("setxflag", f.setxflag, 1, 1, (0,)),
    ("resetxflag", f.resetxflag, 1, 1, (0,)),
    ("isxflagset", f.isxflagset, 1, 1, (0,)),
    ("msg_iflag_set", f.msg_iflag_set, 1, 1, ()),
    ("msg_iflag_reset", f.msg_iflag_reset, 1, 1, ()),
    ("msg_iflag_is_set", f.msg_iflag_is_set, 1, 1, ()),
    ("set_send_socket", _dyn(f.set_send_socket), 1, 1, ()),
    ("set_send_socket_name", _dyn(f.set_send_socket_name), 1, 1, ()),
    ("set_recv_socket", _dyn(f.set_recv_socket), 1, 1, ()),
    ("set_recv_socket_name", _dyn(f.set_recv_socket_name), 1, 1, ()),
    ("set_source_address", _dyn(f.set_source_address), 1, 1, ()),
    ("send_data", _dyn(f.send_data), 2, 2, ()),
    ("sendx", _dyn(f.sendx), 3, 3, ()),
    ("send_udp", _dyn(_send_udp), 0, 1, ()),
    ("send_tcp", _dyn(_send_tcp), 0, 1, ()),
    ("is_faked_msg", f.is_faked_msg, 0, 0, ()),
    ("is_socket_name", _dyn(f.is_socket_name), 1, 1, ()),
    ("file_read", _file_read, 2, 2, ()),
    ("file_write", _dyn(f.file_write), 2, 2, ()),
    ("forward_reply", f.forward_reply, 0, 0, ()),
]


def exports() -> list[KemiExport]:
    out = [export(MODULE, name, fn, params) for name, fn, params in EXPORTS]
    out.append(export(MODULE, "file_read", f.file_read, "s", ReturnKind.XVAL))
    return out


def rpc_list_sockets(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    """The sockets the server listens on (Kamailio's corex.list_sockets fields)."""
    return [{"PROTO": lst.proto, "NAME": lst.host, "ADDRLIST": {"ADDR": lst.host},
             "PORT": str(lst.port), "MCAST": "no", "MHOMED": "no",
             "VIRTUAL": "yes" if lst.virtual else "no", "SOCKNAME": lst.name or "-",
             "ADVERTISE": (f"{lst.advertise_host}:{lst.advertise_port or lst.port}"
                           if lst.advertise_host else "-")}
            for lst in core.config.listen]


def rpc_list_aliases(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    """The host names that count as this server (alias=), for the myself checks."""
    return [{"PROTO": "*", "ADDR": a.host, "PORT": a.port or 0} for a in core.config.aliases]


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "alias_subdomains", str, multi=True,
                       doc="accepted: a domain whose subdomains are aliases (not acted on)")
    core.declare_param(MODULE, "dns_cache", str, multi=True, doc="accepted for compatibility")
    core.declare_param(MODULE, "nio_intercept", int, 0, doc="accepted; event_route[network:msg] "
                       "is not run by kemi")
    core.declare_param(MODULE, "nio_min_msg_len", int, 0, doc="accepted for compatibility")
    core.declare_param(MODULE, "nio_msg_avp", str, "", doc="accepted for compatibility")
    core.declare_param(MODULE, "evcb_reply_out", str, "", doc="accepted for compatibility")
    for name, fn, lo, hi, ints in CFG:
        core.add_cfg_function(CfgFunction(MODULE, name, fn, lo, hi, ints, fn.__doc__ or ""))
    core.add_rpc("corex.list_sockets", rpc_list_sockets, rpc_list_sockets.__doc__ or "")
    core.add_rpc("corex.list_aliases", rpc_list_aliases, rpc_list_aliases.__doc__ or "")


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()
