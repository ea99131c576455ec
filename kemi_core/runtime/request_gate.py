"""What a request must get right before the script sees it, as Kamailio 5.6's core decides.

Kamailio reads a request's headers in order only until it has found From, To, Call-ID and
CSeq; what it meets on the way must be right: every Via (protocol SIP/2.0, no empty element),
a To that parses as a name-addr (its URI is not judged), a CSeq of two words, none of From, To,
Call-ID, CSeq or Max-Forwards twice. A request line with more than one space between its parts
it refuses too (RFC 4475 3.1.2.10). Headers after those four are read only when the script asks.

Everything else reaches the script, where sanity_check judges it: a CSeq number that is not
one, a CSeq method other than the request's, an empty Call-ID, a From that does not parse, a
bad header after the four.

Kamailio drops what it refuses here; kemi answers 400 (SipParseError) as RFC 3261 8.2 asks,
addressed as the dispatcher can (see Dispatcher._try_reply).
"""

from __future__ import annotations

from typing import Any

from kemi_core.sip import SipMsg, SipParseError, parse_name_addr
from kemi_core.sip.headers import Via, parse_vias
from kemi_core.sip.syntax import usual_request

#: The four headers whose first sight ends Kamailio's reading before the script.
_REQUIRED = frozenset(("from", "to", "call-id", "cseq"))
#: Headers Kamailio refuses to meet twice on that way.
_ONCE = _REQUIRED | {"max-forwards"}
#: To-header complaints about the URI or a parameter's value only: Kamailio's To parser reads
#: the structure (display name, <>, parameters) and does not judge these.
_TO_URI_ONLY = frozenset(("Address without scheme", "Unexpected '*'", "Empty parameter value"))
_BAD_PROTOCOL = "Bad Via protocol version"
#: header layouts met (the keys as a tuple) -> ``_read_layout``'s answer; bounded
_LAYOUTS: dict[tuple[str, ...], tuple[int, int, int, bool] | None] = {}
_LAYOUTS_MAX = 1024
_UNSEEN: Any = object()


def check_request_headers(msg: SipMsg) -> None:
    """Raise SipParseError (-> 400) for what Kamailio 5.6 refuses before running the script.

    It runs for every request: it walks the parser's canonical header keys and reads the
    value of a Via, To or CSeq line only (no per-line name or value is made for the others).
    The usual request is judged right here, a call or two fewer per request: its layout is
    looked up (``_usual_layout``) and only its Via, CSeq and To values are checked; anything
    else, or a check that fails, takes the walk (which raises the precise error). Compiled
    (``usual_request``), the usual case's checks are one call; whatever it does not call
    usual takes the Python below, which decides."""
    if usual_request is not None and usual_request(msg, _LAYOUTS):
        try:
            msg.to  # noqa: B018 - parsed (kept for the script)
            return
        except SipParseError:
            pass  # the checks below decide
    if "  " in msg.first_line:
        raise SipParseError(400, "Malformed request line")
    top = msg.via  # it parses (Kamailio reads it first, wherever it is); cached for later
    keys = msg.header_keys
    layout = tuple(keys)
    at = _LAYOUTS.get(layout, _UNSEEN)
    if at is _UNSEEN:
        at = _usual_layout(layout)
    if at is not None:
        # the lone top Via (parsed already) of protocol SIP/2.0, a CSeq of two words, and
        # the message's only To (_check_to's usual case): parsed, kept for the script. An
        # empty To does not parse ("Empty address"): the walk gives its "Empty To header".
        via_at, _, cseq_at, to_once = at
        via = msg.value_at(via_at)
        protocol = top.protocol
        if (via == top.raw and "," not in via
                and (protocol == "SIP/2.0" or protocol.upper() == "SIP/2.0")
                and len(msg.value_at(cseq_at).split()) == 2 and to_once):
            try:
                msg.to  # noqa: B018
                return
            except SipParseError:
                pass  # the walk decides (a complaint about the URI alone passes there)
    _walk(msg, keys, top)


def _usual_layout(layout: tuple[str, ...]) -> tuple[int, int, int, bool] | None:
    """(Via, To, CSeq) line indexes, and whether that To is the message's only one, when the
    walk over the header keys ``layout`` meets the usual request: the four required headers
    each once, at most one Max-Forwards, one Via line before the last of them; else None.
    Every request asks and a sender keeps its layout, so the answer is kept per layout in
    ``_LAYOUTS`` (bounded like the parser's caches) instead of a step per header."""
    at = _read_layout(layout)
    if len(_LAYOUTS) < _LAYOUTS_MAX:
        _LAYOUTS[layout] = at
    return at


def _read_layout(keys: tuple[str, ...]) -> tuple[int, int, int, bool] | None:
    if not ("from" in keys and "to" in keys and "call-id" in keys and "cseq" in keys):
        return None
    read = keys[:max(keys.index("from"), keys.index("to"), keys.index("call-id"),
                     keys.index("cseq")) + 1]  # what Kamailio reads before the script
    if (read.count("via") != 1 or read.count("from") != 1 or read.count("to") != 1
            or read.count("call-id") != 1 or read.count("cseq") != 1
            or read.count("max-forwards") > 1):
        return None
    return read.index("via"), read.index("to"), read.index("cseq"), keys.count("to") == 1


def _walk(msg: SipMsg, keys: list[str], top: Via) -> None:
    """Kamailio's reading, header by header, until From, To, Call-ID and CSeq were all met."""
    seen: set[str] = set()
    for i in range(1, len(keys)):
        key = keys[i]
        if key == "via":
            value = msg.value_at(i)
            if value == top.raw and "," not in value:  # the usual lone top Via, parsed already
                if top.protocol.upper() != "SIP/2.0":
                    raise SipParseError(400, _BAD_PROTOCOL)
            else:
                _check_via_line(parse_vias(value), value)
        elif key in _ONCE:
            if key in seen:
                raise SipParseError(400, f"Multiple {key} headers")
            seen.add(key)
            if key == "to":
                _check_to(msg, msg.value_at(i), keys.count("to") == 1)
            elif key == "cseq" and len(msg.value_at(i).split()) != 2:
                raise SipParseError(400, "Malformed CSeq")
            if seen >= _REQUIRED:
                return
    missing = sorted(_REQUIRED - seen)[0]
    raise SipParseError(400, f"Missing {missing} header")


def _check_via_line(vias: list[Via], value: str) -> None:
    if '"' not in value and len(vias) != value.count(",") + 1:
        raise SipParseError(400, "Empty Via element")
    for via in vias:
        if via.protocol.upper() != "SIP/2.0":
            raise SipParseError(400, _BAD_PROTOCOL)


def _check_to(msg: SipMsg, value: str, once: bool) -> None:
    """The To ``value`` read on the way parses (its URI is not judged); ``once``: it is the
    message's only To, whose parse is kept for the script."""
    if not value:
        raise SipParseError(400, "Empty To header")
    try:
        if once:
            msg.to  # noqa: B018 - parsed once here, cached for the script
        else:  # a second To after the four is the script's business
            parse_name_addr(value)
    except SipParseError as exc:
        if exc.reason not in _TO_URI_ONLY:
            raise
