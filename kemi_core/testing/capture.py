"""Run KEMI functions without a network: a transport that records what would be sent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from kemi_core.config.model import CoreConfig, ListenAddr
from kemi_core.plugins import ModuleLoader
from kemi_core.runtime.clock import Clock
from kemi_core.runtime.context import MsgContext, RecvInfo
from kemi_core.runtime.core import Core
from kemi_core.sip import ParseLimits, SipMsg, parse_datagram

if TYPE_CHECKING:
    from kemi_core.runtime.dispatch import Dispatcher


@attrs.define
class Sent:
    """One datagram the capture transport was asked to send."""

    proto: str
    host: str
    port: int
    data: bytes
    local: tuple[str, int] | None

    @property
    def msg(self) -> SipMsg:
        return parse_datagram(self.data)


class CaptureTransport:
    """Implements the core's Transport protocol; ``sent`` lists every send."""

    def __init__(self, address: tuple[str, int] = ("127.0.0.1", 5060)) -> None:
        self.address = address
        self.sent: list[Sent] = []

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool:
        self.sent.append(Sent(proto, host, port, data, local))
        return True

    def local_address(self, proto: str) -> tuple[str, int]:
        return self.address


def add_core_exports(core: Core) -> None:
    """Add the core's own KEMI functions (``KSR.x.exit``, ``KSR.pv.get``, ...) and RPC commands
    (``core.version``, ...) to ``core``, as the server does before it loads any module."""
    from kemi_core.core_exports import core_exports
    from kemi_core.rpc.core_commands import register_core_commands

    core.registry.add(core_exports())
    register_core_commands(core)


def attach_dispatcher(core: Core, limits: ParseLimits | None = None) -> Dispatcher:
    """The real per-message dispatcher for ``core`` (what a worker runs), attached to it:
    feed it with ``dispatcher.on_message(msg, rcv)`` or ``dispatcher.on_data(bytes, rcv)``."""
    from kemi_core.runtime.dispatch import Dispatcher

    dispatcher = Dispatcher(core, limits or ParseLimits())
    core.dispatcher = dispatcher
    return dispatcher


def offline_core(*modules: tuple[str, Any], params: dict[tuple[str, str], Any] | None = None,
                 init: bool = True, config: CoreConfig | None = None,
                 core_exports: bool = True, clock: Clock | None = None
                 ) -> tuple[Core, CaptureTransport]:
    """A Core listening (on paper) at udp:127.0.0.1:5060 with ``(name, plugin)`` modules loaded,
    their params set and mod_init run, and a capture transport attached. ``core.loader`` drives
    the remaining hooks (``core.loader.child_init_all(1)``). ``clock``: e.g. a VirtualClock the
    test advances."""
    cfg = config if config is not None else CoreConfig(listen=[ListenAddr("udp", "127.0.0.1", 5060)])
    core = Core(cfg, clock)
    if core_exports:
        add_core_exports(core)
    loader = ModuleLoader(core, available={})
    for name, plugin in modules:
        loader.register(name, plugin)
    for (mod, name), value in (params or {}).items():
        core.set_param(mod, name, value)
    if init:
        loader.init_all()
    transport = CaptureTransport()
    core.attach_transport(transport)
    return core, transport


def context(core: Core, raw: bytes | str, src: tuple[str, int] = ("127.0.0.1", 5070),
            proto: str = "udp") -> MsgContext:
    """The context a KEMI function gets for ``raw`` SIP received from ``src`` (udp by default)."""
    data = raw.encode() if isinstance(raw, str) else raw
    rcv = RecvInfo(proto, src[0], src[1], "127.0.0.1", 5060)
    return core.new_context(parse_datagram(data), rcv)
