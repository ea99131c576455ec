"""Run KEMI functions without a network: a transport that records what would be sent."""

from __future__ import annotations

from typing import Any

import attrs

from kemi_core.config.model import CoreConfig, ListenAddr
from kemi_core.plugins import ModuleLoader
from kemi_core.runtime.context import MsgContext, RecvInfo
from kemi_core.runtime.core import Core
from kemi_core.sip import SipMsg, parse_datagram


@attrs.define
class Sent:
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


def offline_core(*modules: tuple[str, Any], params: dict[tuple[str, str], Any] | None = None,
                 init: bool = True) -> tuple[Core, CaptureTransport]:
    """A Core listening (on paper) at udp:127.0.0.1:5060 with ``(name, plugin)`` modules loaded,
    their params set and mod_init run, and a capture transport attached."""
    from kemi_core.core_exports import core_exports

    cfg = CoreConfig(listen=[ListenAddr("udp", "127.0.0.1", 5060)])
    core = Core(cfg)
    core.registry.add(core_exports())
    loader = ModuleLoader(core, available={})
    for name, plugin in modules:
        loader.register(name, plugin)
    for (mod, name), value in (params or {}).items():
        core.set_param(mod, name, value)
    if init:
        loader.init_all()
    transport = CaptureTransport()
    core.attach_transport(transport)
    core.loader = loader  # type: ignore[attr-defined]
    return core, transport


def context(core: Core, raw: bytes | str, src: tuple[str, int] = ("127.0.0.1", 5070),
            proto: str = "udp") -> MsgContext:
    data = raw.encode() if isinstance(raw, str) else raw
    rcv = RecvInfo(proto, src[0], src[1], "127.0.0.1", 5060)
    return core.new_context(parse_datagram(data), rcv)
