"""Transaction matching keys (RFC 3261 17.1.3 and 17.2.3).

Server side, a request is matched by a hashable key:
  * RFC 3261 (top Via branch starts with the magic cookie ``z9hG4bK``):
    ``("3261", branch, sent-by host, sent-by port, method, Call-ID, CSeq number)`` with ACK
    counted as INVITE, so an ACK for a negative final finds its INVITE. CANCEL is its own
    transaction; the INVITE it cancels is found by the same key with method INVITE
    (``cancel_target_key``). The Call-ID and CSeq number are Kamailio's: a client that reuses a
    branch for a new request (another Call-ID or CSeq) gets a new transaction there, not the
    old one's reply (a retransmission, an ACK and a CANCEL carry the same two).
  * RFC 2543 fallback (no cookie): ``("2543", Request-URI, From tag, Call-ID, CSeq number,
    method, top Via)``. The To tag is left out of the key on purpose: the ACK for a negative
    final carries the To tag of that reply while the initial INVITE has none, so keeping it
    would stop ACK (and CANCEL) from ever matching.
Client side, a reply is matched by ``(top Via branch, CSeq method)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kemi_core.sip import SipMsg

MAGIC_COOKIE = "z9hG4bK"
ServerKey = tuple[object, ...]
ClientKey = tuple[str, str]

_DEFAULT_PORTS = {"tls": 5061, "wss": 443, "ws": 80}


def is_rfc3261_branch(branch: str | None) -> bool:
    return bool(branch) and branch.startswith(MAGIC_COOKIE)  # type: ignore[union-attr]


def key_for(msg: SipMsg, method: str) -> ServerKey:
    """The server key of ``msg`` as a request of ``method`` (``server_key`` of any request but
    an ACK: t_relay, which knows the method, calls this directly)."""
    # every request a transaction handles computes its key: the 3261 case inline
    via = msg.via
    branch = via.branch
    if branch and branch.startswith(MAGIC_COOKIE):
        port = via.port
        if port is None:
            port = _DEFAULT_PORTS.get(via.transport.lower(), 5060)
        return ("3261", branch, via.host.lower(), port, method, msg.call_id, msg.cseq.number)
    return ("2543", msg.ruri, msg.from_.tag, msg.call_id, msg.cseq.number, method,
            "".join(via.raw.split()))


def server_key(msg: SipMsg) -> ServerKey:
    """Key of the server transaction a request belongs to (ACK maps to its INVITE)."""
    method = msg.method
    return key_for(msg, "INVITE" if method == "ACK" else method)


def cancel_target_key(cancel: SipMsg) -> ServerKey:
    """Key of the INVITE server transaction a CANCEL refers to (RFC 3261 9.2)."""
    return key_for(cancel, "INVITE")


def client_key(branch: str, method: str) -> ClientKey:
    """Key of a client transaction: the branch of the Via we put on, and the method sent."""
    return (branch, "INVITE" if method == "ACK" else method)


def reply_key(reply: SipMsg) -> ClientKey | None:
    """Key a reply matches a client transaction by (17.1.3); None without a Via branch."""
    branch = reply.via.branch
    if not branch:
        return None
    return (branch, reply.cseq.method)
