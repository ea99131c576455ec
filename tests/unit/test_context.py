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


def test_compiled_maker_matches_the_python_form() -> None:
    """message_context (compiled when built) and message_context_py give equal contexts for
    every number of arguments, each with containers of its own."""
    from kemi_core.runtime.context import message_context_py

    core, _ = offline_core()
    msg = parse_datagram(RAW)
    rcv = RecvInfo("udp", "10.0.0.1", 5070, "127.0.0.1", 5060)
    for args in ((msg, rcv, core), (msg, rcv, core, RouteType.ONSEND),
                 (msg, rcv, core, RouteType.REQUEST, "sip:x@y")):
        made, expected = message_context(*args), message_context_py(*args)
        assert type(made) is MsgContext
        for field in attrs.fields(MsgContext):
            assert getattr(made, field.name) == getattr(expected, field.name), field.name
        assert made.extra is not expected.extra and made.branches is not expected.branches
    made.flags = 3  # the slots stay writable
    assert made.flags == 3


def test_compiled_maker_refuses_wrong_arguments() -> None:
    import pytest

    core, _ = offline_core()
    msg = parse_datagram(RAW)
    rcv = RecvInfo("udp", "10.0.0.1", 5070, "127.0.0.1", 5060)
    with pytest.raises(TypeError):
        message_context(msg, rcv)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        message_context(msg, rcv, core, RouteType.REQUEST, None, 1)  # type: ignore[call-arg]


def test_compiled_maker_refuses_a_class_without_slots() -> None:
    import pytest

    from kemi_core.runtime import context

    fast = pytest.importorskip("kemi_core.sip._fast")

    @attrs.define(slots=False)
    class Plain:
        a: int = 0

    with pytest.raises(ValueError):
        fast.context_maker(Plain, context._field_defaults(Plain), (0,))
    with pytest.raises(ValueError):  # a required field that is no parameter
        fast.context_maker(MsgContext, context._field_defaults(MsgContext), ())
