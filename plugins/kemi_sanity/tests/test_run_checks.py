"""run_checks runs the checks a value selects, in bit order, as a plain walk over CHECKS."""

from __future__ import annotations

import pytest

from kemi_core.sip import parse_datagram
from kemi_sanity.checks import _REQUEST_ONLY as REQUEST_ONLY
from kemi_sanity.checks import CHECKS, Failure, Settings, run_checks

GOOD = (b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
        b"Expires: 60\r\nContent-Length: 0\r\n\r\n")
MESSAGES = [
    GOOD,
    GOOD.replace(b"Call-ID: c\r\n", b""),
    GOOD.replace(b"CSeq: 1 INVITE", b"CSeq: 1 BYE"),
    GOOD.replace(b"CSeq: 1 INVITE", b"CSeq: x INVITE"),
    GOOD.replace(b"CSeq: 1 INVITE", b"CSeq: x BYE"),
    GOOD.replace(b"CSeq: 1 INVITE", b"CSeq: 1"),
    GOOD.replace(b"CSeq: 1 INVITE", b"CSeq: 1 INVITE x"),
    GOOD.replace(b"CSeq: 1 INVITE\r\n", b""),
    GOOD.replace(b"Expires: 60", b"Expires: soon"),
    GOOD.replace(b"To: <sip:b@h>", b"To: <sip:b@h>;tag=1;tag=2"),
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\n"
    b"To: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
]


def walk(data: bytes, checks: int) -> Failure | None:
    msg = parse_datagram(data)
    if not msg.is_request:
        checks &= ~REQUEST_ONLY
    for bit, check in CHECKS:
        if checks & bit:
            failure = check(msg, Settings())
            if failure is not None:
                return failure
    return None


@pytest.mark.parametrize("checks", [0, 1511, 3047, 17895, 32767, 4, 64 | 128, 4096, 32, 64,
                                    32 | 64])
def test_run_checks_is_the_walk(checks: int) -> None:
    for data in MESSAGES:
        for _ in range(2):  # the second time from the memo of selected checks
            assert run_checks(parse_datagram(data), checks, Settings()) == walk(data, checks)


def test_a_failure_is_found() -> None:
    failure = run_checks(parse_datagram(MESSAGES[1]), 1511, Settings())
    assert failure is not None and failure.code == 400
