"""Offer, answer, delete: one rtpproxy session per media stream, and the SDP rewritten to it.

What the SDP gets, as Kamailio 5.6 does it: each m= port becomes the proxy's port for that
stream, a stream's own c= line the proxy's address (unless on hold, 0.0.0.0), the session c=
too when a stream uses it (or with flag ``c``), the o= address the first stream's proxy address,
``a=rtcp:`` the proxy port + 1, and the ``nortpproxy_str`` line marks the body as done (a marked
body is left alone unless flag ``f``). The address given to the proxy for a stream is the
message's source address, or the SDP's own with flag ``r`` (or ``a``).
"""

from __future__ import annotations

import logging

import attrs

from kemi_core.api import MsgContext, PvError, get_pv
from kemi_core.sip import Sdp, SdpError, SipParseError
from kemi_rtpproxy import protocol
from kemi_rtpproxy.nodes import Node
from kemi_rtpproxy.proxies import Proxies

log = logging.getLogger("kemi.rtpproxy")

#: Return codes.
OK, ERROR, MARKED, NO_PROXY = 1, -1, -2, -3


@attrs.define
class Flags:
    asymmetric: bool = False
    trust_address: bool = False
    lookup_only: bool = False
    force: bool = False
    session_c: bool = False
    via_branch: int = 0  # 1 first Via, 2 second, 3: 1 for requests, 2 for replies
    extra_id: bool = False
    no_to_tag: bool = False
    modifiers: str = ""
    auto_bridge: bool = False
    repacketize: int | None = None


class FlagError(ValueError):
    pass


def parse_flags(text: str) -> Flags:
    f = Flags()
    i = 0
    while i < len(text):
        ch = text[i]
        i += 1
        low = ch.lower()
        if ch in "123":
            f.via_branch = int(ch)
        elif low == "a":
            f.asymmetric = f.trust_address = True
            f.modifiers += "A"
        elif low == "b":
            f.extra_id = True
        elif low == "i" or low == "e":
            f.modifiers += low.upper()
        elif low == "x":
            f.auto_bridge = True
        elif low == "l":
            f.lookup_only = True
        elif low == "f":
            f.force = True
        elif low == "r":
            f.trust_address = True
        elif low == "o":
            pass  # the o= address is always rewritten (as Kamailio 5.6 does)
        elif low == "c":
            f.session_c = True
        elif low == "w":
            f.modifiers += "S"
        elif low == "t":
            f.no_to_tag = True
        elif low == "z":
            digits = ""
            while i < len(text) and text[i].isdigit():
                digits += text[i]
                i += 1
            if not digits:
                raise FlagError("z needs a number of milliseconds")
            f.repacketize = int(digits)
        elif ch in " \t":
            continue
        else:
            raise FlagError(f"unknown option `{ch}'")
    return f


#: What rtpproxy_destroy accepts besides 1/2/3, b and t: offer's letters, ignored (as Kamailio
#: 5.6 does: the same flags string may serve rtpproxy_manage for every message of a call).
_DESTROY_IGNORED = set("aAcCeEfFiIlLoOrRwWxXzZ")


def parse_destroy_flags(text: str) -> Flags:
    f = Flags()
    for ch in text:
        if ch in "123":
            f.via_branch = int(ch)
        elif ch in "bB":
            f.extra_id = True
        elif ch in "tT":
            f.no_to_tag = True
        elif ch not in _DESTROY_IGNORED and ch not in " \t":
            raise FlagError(f"unknown option `{ch}'")
    return f


@attrs.frozen
class Settings:
    nortpproxy_str: str = "a=nortpproxy:yes\r\n"
    extra_id_pv: str = ""
    rtp_inst_pvar: str = ""


class Engine:
    """What rtpproxy_offer/answer/destroy do, over the configured proxies."""

    def __init__(self, proxies: Proxies, settings: Settings) -> None:
        self.proxies = proxies
        self.settings = settings

    # ---- the session identity -------------------------------------------------------------
    def _callid(self, ctx: MsgContext, f: Flags) -> str:
        callid = ctx.msg.call_id
        which = f.via_branch
        if which == 3:
            which = 1 if ctx.msg.is_request else 2
        if which:
            vias = ctx.msg.vias
            if len(vias) < which or not vias[which - 1].branch:
                raise ValueError("can't get Via branch")
            callid += ";" + str(vias[which - 1].branch)
        elif f.extra_id and self.settings.extra_id_pv:
            value = get_pv(ctx, self.settings.extra_id_pv)
            callid += ";" + ("" if value is None else str(value))
        return callid

    @staticmethod
    def _tags(ctx: MsgContext) -> tuple[str, str]:
        msg = ctx.msg
        return msg.from_.tag or "", msg.to.tag or ""

    def _node(self, ctx: MsgContext, callid: str, set_id: int) -> Node | None:
        node = self.proxies.node_for(set_id, callid)
        if node is None:
            log.error("no available proxies")
        elif self.settings.rtp_inst_pvar:
            try:
                ctx.core.pv.spec(self.settings.rtp_inst_pvar).set(ctx, node.url)
            except PvError as exc:
                log.error("rtp_inst_pvar: %s", exc)
        return node

    # ---- offer / answer -------------------------------------------------------------------
    def force(self, ctx: MsgContext, flags: str, new_ip: str, offer: bool, set_id: int = 0) -> int:
        try:
            f = parse_flags(flags)
        except FlagError as exc:
            log.error("force_rtp_proxy(): %s", exc)
            return ERROR
        msg = ctx.msg
        if not msg.body:
            log.debug("rtpproxy: no SDP body")
            return ERROR
        try:
            sdp = Sdp.parse(msg.body)
            streams = sdp.media()
            callid = self._callid(ctx, f)
            from_tag, to_tag = self._tags(ctx)
        except (SdpError, SipParseError, ValueError) as exc:
            log.error("rtpproxy: %s", exc)
            return ERROR
        marker = self.settings.nortpproxy_str.rstrip("\r\n")
        if marker and sdp.has_line(marker) and not f.force:
            return MARKED
        if not streams:
            log.error("rtpproxy: no media stream in the SDP")
            return ERROR
        if offer == msg.is_request:
            first, second = from_tag, to_tag
        else:
            first, second = to_tag, from_tag
        if not offer and not second:
            log.error("rtpproxy: answer without a To tag")
            return ERROR
        node = self._node(ctx, callid, set_id)
        if node is None:
            return NO_PROXY
        create = offer and not f.lookup_only
        replies: list[protocol.SessionReply] = []
        status = OK
        for n, m in enumerate(streams, start=1):
            conn = sdp.media_address(m)
            if conn is None:
                log.error("rtpproxy: no c= line for media stream %d", n)
                status = ERROR
                break
            address = conn.address if f.trust_address else ctx.rcv.src_ip
            mods = self._modifiers(f, node, conn.addrtype, m.formats)
            command = protocol.session_command(create, mods, callid, address, m.port, first,
                                               second or None, n)
            text = self.proxies.send(node, command)
            if text is None:
                status = ERROR
                break
            try:
                reply = protocol.parse_session(text)
            except protocol.ProtocolError as exc:
                log.error("force_rtp_proxy(): %s", exc)
                status = ERROR
                break
            if reply.port == 0:
                log.error("force_rtp_proxy(): incorrect port 0 in reply from rtp proxy")
                status = ERROR
                break
            replies.append(reply)
        # what was answered is written even when a later stream failed (as Kamailio does)
        _rewrite(sdp, streams[:len(replies)], replies, new_ip or self._fallback(node),
                 bool(new_ip), f.session_c)
        body = sdp.to_bytes()
        if status == OK and marker and not sdp.has_line(marker):
            body = _add_marker(body, marker)
        if replies:
            msg.set_body(body)
        return status

    @staticmethod
    def _fallback(node: Node) -> str:
        return node.host or ""

    @staticmethod
    def _modifiers(f: Flags, node: Node, addrtype: str, formats: list[str]) -> str:
        mods = f.modifiers
        if f.auto_bridge:
            mods += "EI" if addrtype == "IP6" else "IE"
        if addrtype == "IP6":
            mods += "6"
        if f.repacketize is not None:
            if node.caps.get(protocol.CAP_REPACKETIZE):
                mods += f"Z{f.repacketize}"
            else:
                log.warning("force_rtp_proxy(): re-packetization is requested but is not "
                            "supported by the selected RTP proxy node")
        if node.caps.get(protocol.CAP_CODECS) and formats:
            mods += "c" + ",".join(formats)
        return mods

    # ---- delete and friends -----------------------------------------------------------------
    def unforce(self, ctx: MsgContext, flags: str = "", set_id: int = 0) -> int:
        try:
            f = parse_destroy_flags(flags)
            callid = self._callid(ctx, f)
            from_tag, to_tag = self._tags(ctx)
        except (FlagError, SipParseError, ValueError) as exc:
            log.error("unforce_rtp_proxy(): %s", exc)
            return ERROR
        node = self._node(ctx, callid, set_id)
        if node is None:
            return ERROR
        to = None if f.no_to_tag else (to_tag or None)
        self.proxies.send(node, protocol.delete_command(callid, from_tag, to))
        return OK

    def simple(self, ctx: MsgContext, build: str, set_id: int = 0, *args: object) -> str | None:
        """A command that only names the session (Q, R, P, S): the proxy's reply text."""
        try:
            callid = ctx.msg.call_id
            from_tag, to_tag = self._tags(ctx)
        except SipParseError:
            return None
        node = self._node(ctx, callid, set_id)
        if node is None:
            return None
        if build == "Q":
            command = protocol.query_command(callid, from_tag, to_tag or None)
        elif build == "R":
            command = protocol.record_command(callid, from_tag, to_tag or None)
        elif build == "P":
            prompt, count, uac = args
            a, b = (from_tag, to_tag) if uac else (to_tag, from_tag)
            command = protocol.play_command(callid, str(prompt), int(str(count)), a, b or None)
        else:
            uac = args[0]
            a, b = (from_tag, to_tag) if uac else (to_tag, from_tag)
            command = protocol.stop_play_command(callid, a, b or None)
        return self.proxies.send(node, command)


def _rewrite(sdp: Sdp, streams: list, replies: list[protocol.SessionReply], default_ip: str,
             forced_ip: bool, session_c: bool) -> None:
    """Ports and addresses of the answered streams into the SDP."""
    if not replies:
        return

    def ip_of(reply: protocol.SessionReply) -> str:
        return default_ip if forced_ip or not reply.address else reply.address

    session = sdp.session_connection()
    uses_session = False
    # bottom-up: later line indexes stay valid while earlier ones are edited
    for m, reply in reversed(list(zip(streams, replies, strict=True))):
        own = sdp.media_connection(m)
        for i in list(sdp.find("a=rtcp:", m.start + 1, m.end)):
            sdp.lines[i] = f"a=rtcp:{reply.port + 1}"
        if own is not None:
            index, conn = own
            if conn.address != "0.0.0.0":
                ip = ip_of(reply)
                sdp.set_connection(index, ip, "IP6" if ":" in ip else "IP4")
        else:
            uses_session = True
        sdp.set_media_port(m, reply.port)
    first_ip = ip_of(replies[0])
    on_hold = session is not None and session[1].address == "0.0.0.0"
    if session is not None and (uses_session or session_c) and not on_hold:
        sdp.set_connection(session[0], first_ip, "IP6" if ":" in first_ip else "IP4")
    origin_ip = "0.0.0.0" if on_hold else first_ip
    sdp.set_origin_address(origin_ip, "IP6" if ":" in origin_ip else "IP4")


def _add_marker(body: bytes, marker: str) -> bytes:
    """The marker line goes before the body's last line ending, with CRLF before it (so a body
    with LF endings gets a CRLF there too, as Kamailio writes it)."""
    line = b"\r\n" + marker.encode()
    if body.endswith(b"\r\n"):
        return body[:-2] + line + b"\r\n"
    if body.endswith(b"\n"):
        return body[:-1] + line + b"\n"
    return body + line + b"\r\n"
