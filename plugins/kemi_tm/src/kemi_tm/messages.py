"""Requests and replies the transaction layer generates itself.

* ``build_ack``: the hop-by-hop ACK for a 300-699 reply to an INVITE (RFC 3261 17.1.1.3).
* ``build_cancel``: the CANCEL of a forwarded INVITE branch (RFC 3261 9.1).
* ``rewrite_status``: change a reply's status line (503 -> 500 per 16.7 step 6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kemi_core.sip import SipMsg

REASONS = {
    100: "Trying",
    408: "Request Timeout",
    # Kamailio's words for its own 477 (a branch onsend_route dropped) and 478
    477: "Unfortunately error on sending to next hop occurred (477/TM)",
    478: "Unresolvable destination (478/TM)",
    487: "Request Terminated",
    500: "Server Internal Error",
    503: "Service Unavailable",
}


def _same_transaction_request(method: str, request: SipMsg, to_value: str) -> bytes:
    """Request-URI, top Via only, Route set, From, To, Call-ID and CSeq number of ``request``,
    and its Max-Forwards as it was sent (Kamailio 5.6 copies it into the ACK and CANCEL)."""
    lines = [f"{method} {request.ruri} SIP/2.0", f"Via: {request.via.raw}"]
    lines.extend(f"Route: {route}" for route in request.headers("Route"))
    lines += [
        f"From: {request.header('From')}",
        f"To: {to_value}",
        f"Call-ID: {request.call_id}",
        f"CSeq: {request.cseq.number} {method}",
        f"Max-Forwards: {(request.header('Max-Forwards') or '70').strip()}",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def build_ack(request: SipMsg, reply: SipMsg) -> bytes:
    """ACK for a negative final: the To (with its tag) is the reply's, the rest the INVITE's."""
    return _same_transaction_request("ACK", request, reply.header("To") or "")


def build_cancel(request: SipMsg) -> bytes:
    """CANCEL for the INVITE ``request`` exactly as it was sent on a branch."""
    return _same_transaction_request("CANCEL", request, request.header("To") or "")


def rewrite_status(data: bytes, status: int, reason: str) -> bytes:
    """Replace the status line of a serialized reply, keeping everything after it."""
    end = data.find(b"\r\n")
    if end < 0:
        end = data.find(b"\n")
    return f"SIP/2.0 {status} {reason}".encode("utf-8", "surrogateescape") + data[end:]
