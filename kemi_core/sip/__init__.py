"""The SIP message layer (sans-IO): parse bytes into SipMsg, edit it, serialize it, build replies.

See docs/contracts.md for the API other packages code against.
"""

from kemi_core.sip.errors import SipParseError
from kemi_core.sip.headers import CSeq, NameAddr, Via
from kemi_core.sip.message import SipMsg
from kemi_core.sip.parser import DEFAULT_LIMITS, ParseLimits, parse_datagram
from kemi_core.sip.reply import build_reply
from kemi_core.sip.stream import StreamBuffer
from kemi_core.sip.uri import SipUri, parse_uri

__all__ = [
    "DEFAULT_LIMITS",
    "CSeq",
    "NameAddr",
    "ParseLimits",
    "SipMsg",
    "SipParseError",
    "SipUri",
    "StreamBuffer",
    "Via",
    "build_reply",
    "parse_datagram",
    "parse_uri",
]
