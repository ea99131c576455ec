"""is_request / is_reply carry a ``message_fact`` (an engine may answer them from the message's
kind alone): the fact gives what the functions return."""

from __future__ import annotations

import pytest

from kemi_core.api import Core, CoreConfig
from kemi_core.testing import ENGINE_INVITE, context
from kemi_siputils import checks

REPLY = (b"SIP/2.0 200 OK\r\n"
         b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-eng-1\r\n"
         b"From: <sip:alice@example.com>;tag=a1\r\n"
         b"To: <sip:bob@example.com>;tag=b1\r\n"
         b"Call-ID: eng-test-1@127.0.0.1\r\n"
         b"CSeq: 1 INVITE\r\n"
         b"Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize("func", [checks.is_request, checks.is_reply])
@pytest.mark.parametrize("data", [ENGINE_INVITE, REPLY], ids=["request", "reply"])
def test_fact_answers_as_the_function(func, data):
    ctx = context(Core(CoreConfig()), data)
    kind, if_request, if_reply = func.message_fact
    assert kind == "kind"
    assert (if_request if ctx.msg.is_request else if_reply) == func(ctx)
