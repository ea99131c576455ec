"""ctl.so: where the control socket listens (Kamailio's ctl module settings).

kemi's control socket speaks Kamailio's binrpc (``kamcmd -s unix:/path core.version``) and, on
the same socket, JSON-RPC 2.0 (``kemi rpc``): the first byte of a connection tells them apart.
It is configured the Kamailio way, one listener per parameter:
``modparam("ctl", "binrpc", "unix:/run/kemi/kemi_ctl")``, ``"tcp:127.0.0.1:2049"``,
``"udp:127.0.0.1:2049"``, ``"unixd:/path"``. The main process serves them
(kemi_core.rpc.server); this module declares and checks the settings.
"""

from __future__ import annotations

from kemi_core.api import Core, ModuleError, hookimpl
from kemi_core.rpc.server import parse_ctl_address

MODULE = "ctl"


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "binrpc", str, multi=True,
                       doc="control socket address: unix:/path, tcp:host:port, udp:host:port, "
                        "unixd:/path (repeat for several)")
    core.declare_param(MODULE, "binrpc_buffer_size", int, 1024, doc="accepted for compatibility")
    core.declare_param(MODULE, "mode", int, 0o600, doc="accepted for compatibility")
    core.declare_param(MODULE, "user", str, "", doc="accepted for compatibility")
    core.declare_param(MODULE, "group", str, "", doc="accepted for compatibility")
    core.declare_param(MODULE, "fifo", str, "", doc="accepted; use the mi_fifo module for a FIFO")
    core.declare_param(MODULE, "autoconversion", int, 0, doc="accepted for compatibility")
    core.declare_param(MODULE, "binrpc_max_body_size", int, 32, doc="accepted for compatibility")
    core.declare_param(MODULE, "binrpc_struct_max_body_size", int, 8, doc="accepted for compatibility")


@hookimpl
def mod_init(core: Core) -> None:
    for spec in core.modparam(MODULE, "binrpc"):
        try:
            parse_ctl_address(spec)
        except ValueError as exc:
            raise ModuleError(f"ctl: {exc}")
