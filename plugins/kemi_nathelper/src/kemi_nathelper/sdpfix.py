"""fix_nated_sdp(): the SDP of a UA behind NAT made to name the address its packets come from."""

from __future__ import annotations

import logging

from kemi_core.api import MsgContext
from kemi_core.sip import Sdp, SdpError

log = logging.getLogger("kemi.nathelper")

ADD_DIRECTION = 0x01
FIX_MEDIA_IP = 0x02
ADD_NORTPPROXY = 0x04
FIX_ORIGIN_IP = 0x08


class Settings:
    nortpproxy_str = "a=nortpproxy:yes\r\n"
    append_sdp_oldmediaip = 1


settings = Settings()


def fix_nated_sdp(ctx: MsgContext, flags: int, ip: str = "") -> int:
    """Rewrite the SDP for NAT (flags 0x01 add a=direction:active, 0x02 media c= addresses,
    0x04 add the nortpproxy line, 0x08 the o= address) with the source IP or ``ip``.
    1 addresses replaced, 2 none replaced, -1 no usable SDP."""
    msg = ctx.msg
    body = msg.body
    if not body:
        return -1
    try:
        sdp = Sdp.parse(body)
        sdp.media()
    except SdpError as exc:
        log.error("fix_nated_sdp: %s", exc)
        return -1
    new_ip = ip.strip() or ctx.rcv.src_ip
    family = "IP6" if ":" in new_ip else "IP4"
    old: list[str] = []  # what was replaced, for the a=oldmediaip lines (added last)
    if flags & ADD_DIRECTION:
        sdp.append("a=direction:active")
    if flags & FIX_MEDIA_IP:
        for index, conn in sdp.connections():
            if conn.address != new_ip:
                sdp.set_connection(index, new_ip, family)
                old.append(conn.address)
    if flags & FIX_ORIGIN_IP:
        found = sdp.origin()
        if found is not None and found[1][5] != new_ip:
            old.append(found[1][5])
            sdp.set_origin_address(new_ip, family)
    if flags & (FIX_MEDIA_IP | FIX_ORIGIN_IP):
        old += _fix_rtcp(sdp, new_ip, family)
    marker = settings.nortpproxy_str.rstrip("\r\n")
    if flags & ADD_NORTPPROXY and marker and not sdp.has_line(marker):
        sdp.append(marker)
    if settings.append_sdp_oldmediaip:
        for address in old:
            sdp.append(f"a=oldmediaip:{address}")
    msg.set_body(sdp.to_bytes())
    return 1 if old else 2


def _fix_rtcp(sdp: Sdp, ip: str, family: str) -> list[str]:
    """``a=rtcp:port IN IP4 addr`` lines (RFC 3605) get the new address too."""
    old = []
    for i in list(sdp.find("a=rtcp:")):
        parts = sdp.lines[i][len("a=rtcp:"):].split()
        if len(parts) == 4 and parts[3] != ip:
            old.append(parts[3])
            sdp.lines[i] = f"a=rtcp:{parts[0]} {parts[1]} {family} {ip}"
    return old
