"""nat_uac_test(): the heuristics that guess whether a UA sits behind a NAT.

Each flag is one test, as Kamailio 5.6 documents them; the call is true when any chosen test
finds a NAT. The private ranges are RFC 1918, RFC 6598 (carrier-grade NAT) and RFC 7335's
192.0.0.0/29; ``nat_addr_mode`` 1 (the default) adds 192.0.0.0/24.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

from kemi_core.api import MsgContext
from kemi_core.sip import Sdp, SdpError, SipParseError, SipUri, parse_uri
from kemi_nathelper.uritext import is_ip

log = logging.getLogger("kemi.nathelper")

PRIVATE = [ipaddress.ip_network(n) for n in
           ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "192.0.0.0/29")]
RESERVED = [ipaddress.ip_network("192.0.0.0/24")]

NAT_UAC_TEST_C_1918 = 1
NAT_UAC_TEST_RCVD = 2
NAT_UAC_TEST_V_1918 = 4
NAT_UAC_TEST_S_1918 = 8
NAT_UAC_TEST_RPORT = 16
NAT_UAC_TEST_O_1918 = 32
NAT_UAC_TEST_WS = 64
NAT_UAC_TEST_C_PORT = 128
NAT_UAC_TEST_SDP_CLINE = 256
NAT_UAC_TEST_TARGET = 512

SIP_PORT = 5060


class Settings:
    nat_addr_mode = 1


settings = Settings()


#: is_private's answers per (nat_addr_mode, text): the same few addresses come in every
#: message; emptied when full
_PRIVATE_MEMO: dict[tuple[int, str], bool] = {}
_MEMO_SIZE = 1024


def _remember(memo: dict[tuple[int, str], bool], key: tuple[int, str], answer: bool) -> bool:
    """Keep ``answer`` in ``memo`` (emptied when full) and return it."""
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = answer
    return answer


def is_private(text: str) -> bool:
    """An IPv4 address in the private ranges (a name or an IPv6 address is not)."""
    key = (settings.nat_addr_mode, text)
    found = _PRIVATE_MEMO.get(key)
    return _remember(_PRIVATE_MEMO, key, _is_private(text)) if found is None else found


def _is_private(text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    if ip.version != 4:
        return False
    nets = PRIVATE + RESERVED if settings.nat_addr_mode == 1 else PRIVATE
    return any(ip in net for net in nets)


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a.strip("[]")) == ipaddress.ip_address(b.strip("[]"))
    except ValueError:
        return False


def _first_contact_uri(ctx: MsgContext) -> SipUri | None:
    try:
        contacts = ctx.msg.contacts
    except SipParseError:
        return None
    if not contacts or contacts[0].is_star:
        return None
    try:
        return contacts[0].uri
    except SipParseError:
        return None


def _sdp(ctx: MsgContext) -> Sdp | None:
    body = ctx.msg.body
    if not body:
        return None
    ctype = (ctx.msg.content_type or "").lower()
    if ctype and not ctype.startswith("application/sdp"):
        return None
    try:
        return Sdp.parse(body)
    except SdpError:
        return None


#: _contact_private's answers per (nat_addr_mode, value of a message's one Contact line): a UA
#: sends the same Contact in every request; emptied when full
_CONTACT_MEMO: dict[tuple[int, str], bool] = {}


def _contact_private(ctx: MsgContext) -> bool:
    msg = ctx.msg
    keys = msg.header_keys
    if keys.count("contact") != 1:  # none, or several lines: each parsed as it comes
        return _contact_uri_private(ctx)
    key = (settings.nat_addr_mode, msg.value_at(keys.index("contact")))
    found = _CONTACT_MEMO.get(key)
    return _remember(_CONTACT_MEMO, key, _contact_uri_private(ctx)) if found is None else found


def _contact_uri_private(ctx: MsgContext) -> bool:
    uri = _first_contact_uri(ctx)
    return uri is not None and is_private(uri.host)


def _via_received_differs(ctx: MsgContext) -> bool:
    via = ctx.msg.via
    return not _same_ip(via.host, ctx.rcv.src_ip)


def _via_private(ctx: MsgContext) -> bool:
    return is_private(ctx.msg.via.host)


def _sdp_private(ctx: MsgContext) -> bool:
    sdp = _sdp(ctx)
    if sdp is None:
        return False
    try:
        return any(is_private(c.address) for _, c in sdp.connections())
    except SdpError:
        return False


def _via_port_differs(ctx: MsgContext) -> bool:
    via = ctx.msg.via
    return (via.port or SIP_PORT) != ctx.rcv.src_port


def _source_private(ctx: MsgContext) -> bool:
    return is_private(ctx.rcv.src_ip)


def _websocket(ctx: MsgContext) -> bool:
    return ctx.rcv.proto in ("ws", "wss")


def _contact_port_differs(ctx: MsgContext) -> bool:
    uri = _first_contact_uri(ctx)
    return uri is not None and (uri.port or SIP_PORT) != ctx.rcv.src_port


def _sdp_cline_differs(ctx: MsgContext) -> bool:
    sdp = _sdp(ctx)
    if sdp is None:
        return False
    try:
        return any(not _same_ip(c.address, ctx.rcv.src_ip) for _, c in sdp.connections())
    except SdpError:
        return False


def _target_differs(ctx: MsgContext) -> bool:
    if _websocket(ctx):
        return True
    msg = ctx.msg
    if msg.is_request:
        if not ctx.dst_uri:
            return False
        try:
            r, d = msg.uri, parse_uri(ctx.dst_uri)
        except (SipParseError, ValueError):
            return False
        return (r.host.lower(), r.port or SIP_PORT) != (d.host.lower(), d.port or SIP_PORT)
    vias = msg.vias
    if len(vias) < 2:
        return False
    v = vias[1]
    received = v.params.get("received")
    rport = v.params.get("rport")
    if received and not _same_ip(received, v.host):
        return True
    return bool(rport) and str(rport).isdigit() and int(str(rport)) != (v.port or SIP_PORT)


TESTS = (
    (NAT_UAC_TEST_C_1918, _contact_private),
    (NAT_UAC_TEST_RCVD, _via_received_differs),
    (NAT_UAC_TEST_V_1918, _via_private),
    (NAT_UAC_TEST_S_1918, _sdp_private),
    (NAT_UAC_TEST_RPORT, _via_port_differs),
    (NAT_UAC_TEST_O_1918, _source_private),
    (NAT_UAC_TEST_WS, _websocket),
    (NAT_UAC_TEST_C_PORT, _contact_port_differs),
    (NAT_UAC_TEST_SDP_CLINE, _sdp_cline_differs),
    (NAT_UAC_TEST_TARGET, _target_differs),
)

#: the (bit, test) pairs each ``flags`` value chooses (a script passes one or two values)
_CHOSEN: dict[int, tuple[tuple[int, Callable[[MsgContext], bool]], ...]] = {}


def _chosen(flags: int) -> tuple[tuple[int, Callable[[MsgContext], bool]], ...]:
    found = _CHOSEN.get(flags)
    if found is None:
        if len(_CHOSEN) >= 256:
            _CHOSEN.clear()
        found = _CHOSEN[flags] = tuple((bit, test) for bit, test in TESTS if flags & bit)
    return found


def nat_uac_test(ctx: MsgContext, flags: int) -> int:
    """Guess whether the sender is behind NAT: 1 when a test chosen by ``flags`` says so
    (1 private Contact, 2 Via address is not the source, 4 private Via, 8 private SDP address,
    16 source port is not the Via's, 32 private source, 64 WebSocket, 128 Contact port is not
    the source port, 256 SDP address is not the source, 512 target differs), else -1."""
    for bit, test in _CHOSEN.get(flags) or _chosen(flags):  # the kept answer read here
        try:
            if test(ctx):
                return 1
        except SipParseError as exc:
            log.debug("nat_uac_test: flag %d: %s", bit, exc.reason)
    return -1


def is_rfc1918(ctx: MsgContext, ip: str) -> int:
    """1 when ``ip`` is a private (RFC 1918/6598) IPv4 address, else -1."""
    text = ip.strip()
    if not is_ip(text):
        return -1
    return 1 if is_private(text) else -1
