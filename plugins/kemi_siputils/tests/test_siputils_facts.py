"""is_request / is_reply carry a ``message_fact`` (an engine may answer them from the message's
kind alone): the fact gives what the functions return."""

from __future__ import annotations

import pytest

from kemi_core.api import Core, CoreConfig
from kemi_core.testing import ENGINE_INVITE, context, engine_reply
from kemi_siputils import checks

REPLY = engine_reply("200 OK")

@pytest.mark.parametrize("func", [checks.is_request, checks.is_reply])
@pytest.mark.parametrize("data", [ENGINE_INVITE, REPLY], ids=["request", "reply"])
def test_fact_answers_as_the_function(func, data):
    ctx = context(Core(CoreConfig()), data)
    kind, if_request, if_reply = func.message_fact
    assert kind == "kind"
    assert (if_request if ctx.msg.is_request else if_reply) == func(ctx)
