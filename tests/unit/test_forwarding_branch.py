"""The stateless branch (RFC 3261 16.11): the same MD5 whichever implementation computes it."""

from __future__ import annotations

import hashlib

from kemi_core.forwarding.via import stateless_branch
from kemi_core.sip import parse_datagram


def test_stateless_branch_is_the_md5_of_the_top_via() -> None:
    msg = parse_datagram(b"ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h:5;branch=z9hG4bKx\r\n"
                         b"Call-ID: c\r\nCSeq: 1 ACK\r\n\r\n")
    assert stateless_branch(msg) == "z9hG4bK" + hashlib.md5(b"z9hG4bKx|h|5").hexdigest()[:16]


def test_stateless_branch_without_a_cookie_hashes_the_dialog() -> None:
    msg = parse_datagram(b"ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=1\r\n"
                         b"From: <sip:a@b>;tag=f\r\nTo: <sip:c@d>;tag=t\r\nCall-ID: c\r\n"
                         b"CSeq: 1 ACK\r\n\r\n")
    seed = "t|f|c|sip:a@b|SIP/2.0/UDP h;branch=1|1"
    assert stateless_branch(msg) == "z9hG4bK" + hashlib.md5(seed.encode()).hexdigest()[:16]
