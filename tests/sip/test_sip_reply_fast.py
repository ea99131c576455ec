"""build_reply compiled (_fast.c reply_builder) gives what its pure form build_reply_py gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kemi_core.sip.reply as reply_mod
from kemi_core.sip import SipParseError, parse_datagram

pytestmark = pytest.mark.skipif(reply_mod.build_reply is reply_mod.build_reply_py,
                                reason="the C helpers were not built (or KEMI_SIP_PURE)")

TOS = ["<sip:a@b>", "<sip:a@b>;tag=t1", "sip:a@b ; tag = x", "<sip:a@b", "", "\"A\" <sip:a@b>;x"]
EXTRA = ["", "Timestamp: 54\r\n", "To: <sip:c@d>\r\n", "Via: SIP/2.0/TCP v:5\r\n",
         "t: <sip:e@f>;tag=9\r\n", "Subject: \xe9\r\n"]
STARTS = ["INVITE sip:a@b SIP/2.0", "OPTIONS sip:a@b SIP/2.0", "SIP/2.0 200 OK"]


def outcome(fn: Any, *args: Any, **kwargs: Any) -> object:
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError, SipParseError) as exc:
        return (type(exc), str(exc))


@settings(max_examples=500, deadline=None)
@given(start=st.sampled_from(STARTS), to=st.sampled_from(TOS),
       extra=st.lists(st.sampled_from(EXTRA), max_size=3),
       status=st.sampled_from([100, 180, 200, 404, 99, 700, True]),
       reason=st.sampled_from(["OK", "Trying", "Not Found", "a\rb", "", "\xe9t\xe9"]),
       tag=st.sampled_from([None, "", "abc", "a\nb"]),
       kwargs=st.sampled_from([{}, {"headers": []}, {"headers": [("X-A", "1")]}, {"body": b""},
                               {"headers": [("Contact", "<sip:a@h>;expires=60"),
                                            ("Date", "Sat, 05 Dec 2026 22:00:00 GMT")]},
                               {"headers": (("X-\xe9", "\xe9t\xe9"), ("X-B", ""))},
                               {"headers": [("X-A", "1\r\nX-B: 2")]}, {"headers": [("X\nA", "1")]},
                               {"headers": [("X-A", 1)]}, {"headers": [["X-A", "1"]]},
                               {"headers": [("X-A", "1", "2")]},
                               {"headers": [("X-A", "1")], "body": b"v=0\r\n"},
                               {"body": b"v=0\r\n"}, {"content_type": None},
                               {"content_type": "application/sdp"}, {"headers": ()}]),
       by_keyword=st.booleans())
def test_build_reply_compiled_is_the_pure_form(start: str, to: str, extra: list[str],
                                               status: Any, reason: str, tag: str | None,
                                               kwargs: dict[str, Any], by_keyword: bool) -> None:
    data = (f"{start}\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:x@y>;tag=f\r\n"
            f"To: {to}\r\n{''.join(extra)}Call-ID: c\r\nCSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n\r\n").encode("utf-8", "surrogateescape")
    try:
        msg = parse_datagram(data)
    except SipParseError:
        return
    if by_keyword:
        args: tuple[Any, ...] = (msg, status, reason)
        kwargs = {"to_tag": tag, **kwargs}
    else:
        args = (msg, status, reason, tag)
    again = parse_datagram(data)
    assert outcome(reply_mod.build_reply, *args, **kwargs) == outcome(
        reply_mod.build_reply_py, again, *args[1:], **kwargs)


def test_build_reply_compiled_keeps_one_status_line_per_code() -> None:
    msg = parse_datagram(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                         b"To: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n")
    for reason in ("OK", "Fine", "OK"):
        assert reply_mod.build_reply(msg, 200, reason, "t") == reply_mod.build_reply_py(
            msg, 200, reason, "t")
