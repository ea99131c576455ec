"""message_context (the per-message MsgContext made without the generated __init__) gives what
the class's own construction gives, field by field, with containers of its own."""

from __future__ import annotations

import attrs

from kemi_core.runtime.context import MsgContext, RecvInfo, RouteType, message_context
from kemi_core.sip import parse_datagram
from kemi_core.testing.capture import offline_core

RAW = (b"OPTIONS sip:u@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5;branch=z9hG4bK1\r\n"
       b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:u@127.0.0.1>\r\nCall-ID: c\r\n"
       b"CSeq: 1 OPTIONS\r\n\r\n")


def test_same_fields_as_the_class_construction() -> None:
    core, _ = offline_core()
    msg = parse_datagram(RAW)
    rcv = RecvInfo("udp", "10.0.0.1", 5070, "127.0.0.1", 5060)
    for route_type in (RouteType.REQUEST, RouteType.CORE_ONREPLY):
        made = message_context(msg, rcv, core, route_type)
        expected = MsgContext(msg=msg, rcv=rcv, core=core, route_type=route_type)
        for field in attrs.fields(MsgContext):
            assert getattr(made, field.name) == getattr(expected, field.name), field.name
    first, second = message_context(msg, rcv, core), message_context(msg, rcv, core)
    for name in ("branches", "avps", "xavps", "mod_state", "extra"):
        assert getattr(first, name) is not getattr(second, name)
