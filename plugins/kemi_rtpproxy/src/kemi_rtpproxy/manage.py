"""rtpproxy_manage(): offer, answer or delete, chosen from the message as Kamailio 5.6 does.

- INVITE with SDP: offer (the transaction is remembered as having an SDP offer); in a
  failure route: delete.
- ACK with SDP: answer (the offer came in the 2xx).
- BYE, CANCEL, any request in a failure route: delete.
- A reply to an INVITE with status >= 300: delete; a 1xx/2xx with SDP: answer when the INVITE
  carried SDP (or tm is not loaded), else offer; a reply to BYE or CANCEL: delete.

Which INVITEs had SDP (Kamailio marks the transaction) is kept in the shared store by Call-ID
and CSeq for a few minutes, so any worker handling a reply knows it.
"""

from __future__ import annotations

from kemi_core.api import MsgContext, RouteType, SharedTable
from kemi_core.sip import SipParseError
from kemi_rtpproxy.engage import ERROR, Engine

#: How long an INVITE's "had SDP" is remembered (seconds).
REMEMBER_SECONDS = 300.0


class OfferMemory:
    """(Call-ID, CSeq number) of INVITEs that carried an SDP offer, recent ones only."""

    def __init__(self, table: SharedTable) -> None:
        self.table = table

    @staticmethod
    def _key(callid: str, cseq: int) -> str:
        return f"{cseq} {callid}"[:400]

    def add(self, callid: str, cseq: int) -> None:
        self.table.put(self._key(callid, cseq), True, ttl=REMEMBER_SECONDS)

    def had_offer(self, callid: str, cseq: int) -> bool:
        return self._key(callid, cseq) in self.table


def manage(engine: Engine, memory: OfferMemory, ctx: MsgContext, flags: str, ip: str,
           tm_loaded: bool, set_id: int = 0) -> int:
    msg = ctx.msg
    try:
        method = msg.method  # a reply's is its CSeq method
        callid = msg.call_id
        cseq = msg.cseq.number
    except SipParseError:
        return ERROR
    has_sdp = bool(msg.body) and (msg.content_type or "application/sdp").lower().startswith(
        "application/sdp")
    if ctx.route_type & RouteType.BRANCH_FAILURE:
        return ERROR
    if msg.is_request:
        if ctx.route_type & RouteType.FAILURE:
            return engine.unforce(ctx, flags, set_id)
        if method == "INVITE" and has_sdp:
            memory.add(callid, cseq)
            return engine.force(ctx, flags, ip, offer=True, set_id=set_id)
        if method == "ACK" and has_sdp:
            return engine.force(ctx, flags, ip, offer=False, set_id=set_id)
        if method in ("BYE", "CANCEL"):
            return engine.unforce(ctx, flags, set_id)
        return ERROR
    status = msg.status
    if method == "INVITE":
        if status >= 300:
            return engine.unforce(ctx, flags, set_id)
        if has_sdp:
            answer = memory.had_offer(callid, cseq) or not tm_loaded
            return engine.force(ctx, flags, ip, offer=not answer, set_id=set_id)
        return ERROR
    if method in ("BYE", "CANCEL"):
        return engine.unforce(ctx, flags, set_id)
    return ERROR
