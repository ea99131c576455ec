"""Literal SIP messages for the transaction-layer tests (parsed with kemi_core.sip)."""

from __future__ import annotations

import pytest

from kemi_core.sip import SipMsg, build_reply, parse_datagram


class Sip:
    """Builds requests as a caller would send them and replies as a callee would."""

    @staticmethod
    def request(method: str = "INVITE", *, branch: str = "z9hG4bKcaller1",
                sent_by: str = "10.0.0.1:5060", transport: str = "UDP", cseq: int = 1,
                to_tag: str | None = None, ruri: str = "sip:bob@example.com",
                routes: tuple[str, ...] = (), call_id: str = "call1@10.0.0.1") -> SipMsg:
        to = "Bob <sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
        via_branch = f";branch={branch}" if branch else ""
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/{transport} {sent_by}{via_branch}",
            "Max-Forwards: 70",
            *(f"Route: {r}" for r in routes),
            "From: Alice <sip:alice@example.com>;tag=a1",
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            "Contact: <sip:alice@10.0.0.1>",
            "Content-Length: 0",
        ]
        return parse_datagram(("\r\n".join(lines) + "\r\n\r\n").encode())

    @staticmethod
    def reply(request: SipMsg | bytes, status: int, reason: str = "X",
              to_tag: str | None = "callee1") -> SipMsg:
        """The reply a UAS sends for ``request`` (every Via copied, as on the wire)."""
        req = parse_datagram(request) if isinstance(request, bytes) else request
        return parse_datagram(build_reply(req, status, reason, to_tag=to_tag))

    @staticmethod
    def parse(data: bytes) -> SipMsg:
        return parse_datagram(data)


@pytest.fixture
def sip() -> type[Sip]:
    return Sip
