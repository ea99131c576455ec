"""sl's filter of the ACKs of its own replies compiled (kemi_core.sip.ack_absorber) against the
Python form, the reference: ACKs whose To tag is sl's (its prefix and "."), the prefix alone,
another tag or none, a To that does not parse, other methods, an empty prefix, no counters:
the same answer and the same received_acks count. The usual ACK must not reach the pure form."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kemi_sl
from kemi_core.sip import ack_absorber
from kemi_core.testing import context, offline_core

pytestmark = pytest.mark.skipif(ack_absorber is None, reason="_fast not built")

CORE, _ = offline_core(("sl", kemi_sl))
STATE: Any = kemi_sl._state
PREFIX = STATE.tag_prefix


class _Counted:
    calls = 0

    def __call__(self, ctx: Any) -> bool:
        _Counted.calls += 1
        return kemi_sl._absorb_own_ack(ctx)


FAST = ack_absorber((STATE, _Counted()))


def _request(method: str, to: str) -> bytes:
    lines = [f"{method} sip:bob@127.0.0.1 SIP/2.0",
             "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-s1", "From: <sip:a@127.0.0.1>;tag=f1",
             f"To: {to}", "Call-ID: sl-ack-1", f"CSeq: 1 {method}", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _run(fn: Any, method: str, to: str, prefix: str, stats: bool) -> tuple[Any, int]:
    saved = STATE.tag_prefix, STATE.stats
    STATE.tag_prefix = prefix
    if not stats:
        STATE.stats = None
    try:
        counter = saved[1].received_acks
        before = counter.value
        ret = fn(context(CORE, _request(method, to)))
        return ret, counter.value - before
    finally:
        STATE.tag_prefix, STATE.stats = saved


_TAGS = [f";tag={PREFIX}.1a2b3c4d", f";tag={PREFIX}.", f";tag={PREFIX}", f";tag={PREFIX}x.1",
         ";tag=other.1", "", f";tag={PREFIX.upper()}.1", ";tag=.1"]


@settings(max_examples=150, deadline=None)
@given(method=st.sampled_from(["ACK", "ACK", "INVITE", "BYE"]), tag=st.sampled_from(_TAGS),
       to=st.sampled_from(["<sip:bob@127.0.0.1>", "sip:bob@127.0.0.1", "<sip:bob@127.0.0.1"]),
       prefix=st.sampled_from([PREFIX, PREFIX, ""]), stats=st.booleans())
def test_compiled_filter_answers_as_the_python_form(method: str, tag: str, to: str,
                                                    prefix: str, stats: bool) -> None:
    args = (method, to + tag, prefix, stats)
    assert _run(FAST, *args) == _run(kemi_sl._absorb_own_ack, *args)


def test_the_usual_acks_take_the_compiled_path() -> None:
    before = _Counted.calls
    assert _run(FAST, "ACK", f"<sip:b@127.0.0.1>;tag={PREFIX}.1234abcd", PREFIX, True) == (True, 1)
    assert _run(FAST, "ACK", "<sip:b@127.0.0.1>;tag=uas42", PREFIX, True) == (False, 0)
    assert _Counted.calls == before
    assert kemi_sl._absorb_own_ack_compiled in CORE.ack_filters
