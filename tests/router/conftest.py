"""Messages the router tests send (written as a test author writes them: LF line ends, no
Content-Length) and the three versions of one routing script."""

from __future__ import annotations

from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "scripts"

#: One routing logic (keepalive, hop limit, relay with failover) in each engine.
FAILOVER_CFGS = {
    "jsdt": SCRIPTS / "failover_jsdt.cfg",
    "lua": SCRIPTS / "failover_lua.cfg",
    "python": SCRIPTS / "failover_python.cfg",
    "native": SCRIPTS / "failover_native.cfg",
}

PRIMARY = "udp:127.0.0.1:5080"
SECONDARY = "udp:127.0.0.1:5090"


def invite(max_forwards: int = 70, branch: str = "z9hG4bKcaller1", cseq: int = 1) -> str:
    return f"""\
INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}
Max-Forwards: {max_forwards}
From: "Alice" <sip:alice@example.com>;tag=a73kszlfl
To: <sip:bob@example.com>
Call-ID: 1j9FpLxk3uxtm8tn@127.0.0.1
CSeq: {cseq} INVITE
Contact: <sip:alice@127.0.0.1:5070>
Content-Type: application/sdp

v=0
o=alice 2890844526 2890844526 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 49170 RTP/AVP 0
"""


CANCEL = """\
CANCEL sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcaller1
Max-Forwards: 70
From: "Alice" <sip:alice@example.com>;tag=a73kszlfl
To: <sip:bob@example.com>
Call-ID: 1j9FpLxk3uxtm8tn@127.0.0.1
CSeq: 1 CANCEL
"""

KEEPALIVE = """\
OPTIONS sip:127.0.0.1:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKping1
Max-Forwards: 70
From: <sip:monitor@example.com>;tag=m1
To: <sip:127.0.0.1:5060>
Call-ID: ping-1@127.0.0.1
CSeq: 10 OPTIONS
"""


@pytest.fixture(params=sorted(FAILOVER_CFGS))
def failover_cfg(request: pytest.FixtureRequest) -> Path:
    """The failover routing script's config, once per engine."""
    return FAILOVER_CFGS[request.param]
