"""The SIP message layer (sans-IO): parse bytes into SipMsg, edit it, serialize it, build replies.

Public as a whole: plugins import what ``__all__`` lists from ``kemi_core.sip`` itself (never
from its submodules, which are internal).
"""

from kemi_core.sip.binding_fast import (
    reg_contact_value,
    reg_known_request,
    reg_ok_headers,
    reg_one,
    reg_save_usual,
    ul_change_one,
)
from kemi_core.sip.calls_fast import (
    ack_absorber,
    ack_relayer,
    loose_router,
    maxfwd_processor,
    method_tester,
    per_socket_usual,
    pv_msg_getter,
    pv_reader,
    record_router,
    registrar_saver,
    reply_relayer,
    request_relayer,
    transaction_tester,
)
from kemi_core.sip.errors import SipParseError
from kemi_core.sip.headers import CSeq, NameAddr, Via, parse_name_addr
from kemi_core.sip.http import http_request, is_http
from kemi_core.sip.message import SipMsg
from kemi_core.sip.parser import DEFAULT_LIMITS, ParseLimits, parse_datagram
from kemi_core.sip.reply import (
    build_reply,
    reply_top_via,
    reply_via_of,
    request_crc32,
    stateless_sender,
    usual_reply,
)
from kemi_core.sip.sdp import Connection, Media, Sdp, SdpError, parse_connection
from kemi_core.sip.stream import StreamBuffer
from kemi_core.sip.syntax import (
    digest_challenge,
    digest_fields,
    digest_ha1,
    digest_open,
    digest_response,
    header_key,
    method_bit,
    nonce_open,
    nonce_seal,
    split_commas,
)
from kemi_core.sip.uri import SipUri, parse_uri

__all__ = [
    "DEFAULT_LIMITS",
    "CSeq",
    "Connection",
    "Media",
    "NameAddr",
    "ParseLimits",
    "SipMsg",
    "SipParseError",
    "Sdp",
    "SdpError",
    "SipUri",
    "StreamBuffer",
    "Via",
    "build_reply",
    "reply_top_via",
    "reply_via_of",
    "digest_challenge",
    "digest_fields",
    "digest_ha1",
    "digest_open",
    "digest_response",
    "request_crc32",
    "stateless_sender",
    "usual_reply",
    "header_key",
    "method_bit",
    "method_tester",
    "per_socket_usual",
    "ack_absorber",
    "ack_relayer",
    "loose_router",
    "maxfwd_processor",
    "pv_reader",
    "record_router",
    "pv_msg_getter",
    "transaction_tester",
    "http_request",
    "is_http",
    "nonce_open",
    "nonce_seal",
    "parse_name_addr",
    "parse_connection",
    "parse_datagram",
    "parse_uri",
    "reg_contact_value",
    "reg_known_request",
    "reg_ok_headers",
    "reg_one",
    "reg_save_usual",
    "registrar_saver",
    "reply_relayer",
    "request_relayer",
    "split_commas",
    "ul_change_one",
]
