"""bytes_without_top_via on a top Via line of several values (a UA that joins the Vias on one
line, as SIPp's [last_Via:] does): the compiled form gives the pure form's bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kemi_core.sip.message as message_mod
from kemi_core.sip import SipMsg, SipParseError, parse_datagram

pytestmark = pytest.mark.skipif(
    SipMsg.bytes_without_top_via is message_mod.methods_py["bytes_without_top_via"],
    reason="the C helpers were not built (or KEMI_SIP_PURE)")

VALUES = ["SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1", "SIP/2.0/UDP b;rport=5", "SIP/2.0/TCP c",
          "", " ", "\t", "SIP/2.0/UDP d;x=\"q,r\"", "SIP/2.0/UDP <e>", "SIP/2.0/UDP \u00e9",
          "SIP/2.0/UDP f\r\n g", "SIP/2.0/UDP h;i=:j", "  SIP/2.0/UDP k  "]


def reply(via_line: str, more: str = "") -> bytes:
    return (f"SIP/2.0 200 OK\r\n{via_line}\r\n{more}From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2"
            f"\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 2\r\n\r\nab").encode()


@settings(max_examples=500, deadline=None)
@given(values=st.lists(st.sampled_from(VALUES), min_size=1, max_size=4),
       sep=st.sampled_from([",", ", ", " ,", ",\t"]), name=st.sampled_from(["Via", "v", "VIA "]),
       second=st.booleans())
def test_comma_line_compiled_is_the_pure_form(values: list[str], sep: str, name: str,
                                             second: bool) -> None:
    data = reply(f"{name}: {sep.join(values)}", "Via: SIP/2.0/UDP z\r\n" if second else "")
    try:
        msg = parse_datagram(data)
    except SipParseError:
        return
    assert msg.bytes_without_top_via() == message_mod.methods_py["bytes_without_top_via"](msg)


def test_sipp_shape() -> None:
    msg = parse_datagram(reply("Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa.0, "
                               "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport=5070"))
    assert msg.bytes_without_top_via() == reply(
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1;rport=5070")
