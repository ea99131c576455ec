"""RFC 4475 torture messages: every file in tests/data/rfc4475 gets the RFC's outcome.

Valid messages parse and the fields the RFC discusses come out as it says. Invalid ones raise
SipParseError with the status the RFC suggests, either from parse_datagram (framing, start
line) or from the typed property that reads the broken header (parsing is lazy, as in
Kamailio). Messages the RFC calls invalid only at the transaction or application layer parse,
and the test asserts what this layer can say about them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kemi_core.sip import SipMsg, SipParseError, StreamBuffer, parse_datagram
from kemi_core.sip.uri import unescape

CORPUS = Path(__file__).resolve().parents[1] / "data" / "rfc4475"  # RFC 4475's 49 messages


def load(name: str) -> bytes:
    return (CORPUS / f"{name}.dat").read_bytes()


def parse(name: str) -> SipMsg:
    return parse_datagram(load(name))


def raises(status: int, fn: Callable[[], object]) -> SipParseError:
    with pytest.raises(SipParseError) as ei:
        fn()
    assert ei.value.status == status, ei.value
    return ei.value


# ---------------------------------------------------------------- 3.1.1 valid messages
def check_wsinv(m: SipMsg) -> None:
    # 3.1.1.1: LWS and folding everywhere, compact and odd-case names.
    assert m.ruri == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert m.uri.params == {"unknownparam": None}
    assert m.to.uri_text == "sip:vivekg@chair-dnrc.example.com" and m.to.tag == "1918181833n"
    assert m.from_.display == 'J Rosenberg \\"' and m.from_.tag == "98asjd8"
    assert m.from_.uri is not None and m.from_.uri.user == "jdrosen"
    assert m.max_forwards == 68
    assert (m.cseq.number, m.cseq.method) == (9, "INVITE")
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert [(v.protocol, v.transport, v.host, v.branch) for v in m.vias] == [
        ("SIP/2.0", "UDP", "192.0.2.2", "390skdjuw"),
        ("SIP/2.0", "TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("SIP/2.0", "UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.header_count("via") == 2
    assert m.header("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.header("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert m.header("subject") == ""  # "s :" with an empty folded value
    (contact,) = m.contacts
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    (route,) = m.routes
    assert route.uri is not None
    assert route.uri.params == {"lr": None, "unknownwith": "value", "unknown-no-value": None}
    assert m.content_type == "application/sdp"
    assert m.content_length == len(m.body) == 150


def check_intmeth(m: SipMsg) -> None:
    # 3.1.1.2: unusual but legal characters in method, URI, display name and header name.
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.method == method and m.cseq.method == method and m.cseq.number == 139122385
    u = m.uri
    assert u.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert u.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert u.host == "example.com"
    assert m.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert (
        m.to.uri is not None and m.to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    )
    assert m.from_.display == "token1~` token2'+_ token3*%!.-"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert (
        m.from_.params["fromparam''~+*_!.-%"]
        == '"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439"'
    )
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.header("extensionHeader-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"
    assert m.max_forwards == 255


def check_esc01(m: SipMsg) -> None:
    # 3.1.1.3: escapes are kept as written and decode to what the RFC names.
    assert m.uri.host == "example.net" and unescape(m.uri.user or "") == "sips:user@example.com"
    assert m.from_.uri is not None and unescape(m.from_.uri.user or "") == "I have spaces"
    assert m.to.uri is not None and unescape(m.to.uri.user or "") == "user"
    (contact,) = m.contacts
    assert contact.uri is not None
    params = {unescape(k): v for k, v in contact.uri.params.items()}
    assert "lr" in params and unescape(params["name"] or "") == "value%41"
    assert m.call_id == "esc01.239409asdfakjkn23onasd0-3234"  # compact "i:"


def check_escnull(m: SipMsg) -> None:
    # 3.1.1.4: %00 is a legal escape; it stays escaped on the wire.
    assert m.from_.uri is not None and unescape(m.from_.uri.user or "") == "null-\x00-null"
    assert m.to.uri is not None and m.to.uri.user == "null-%00-null"
    assert [unescape(c.uri.user or "") for c in m.contacts if c.uri] == ["\x00", "\x00\x00"]
    assert b"\x00" not in m.to_bytes()


def check_esc02(m: SipMsg) -> None:
    # 3.1.1.5: '%' that is not an escape; the method is unknown, not REGISTER.
    assert m.method == "RE%47IST%45R" and m.method != "REGISTER"
    assert m.cseq.method == "RE%47IST%45R"
    assert m.to.display == "%Z%45" and m.from_.display == "%Z%45"
    assert len(m.contacts) == 2  # "C%6Fntact" is another header
    assert m.header("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert m.via.branch == "z9hG4bK209%fzsnel234"


def check_lwsdisp(m: SipMsg) -> None:
    assert m.from_.display == "caller" and m.from_.tag == "323"


def check_longreq(m: SipMsg) -> None:
    # 3.1.1.7: long values, 34 Via values under many spellings of the name.
    assert len(m.vias) == 34 and m.vias[0].host == "sip33.example.com"
    assert m.vias[-1].branch == "very" + "long" * 50 + "branchvalue"
    assert m.vias[-1].received == "192.0.2.5"
    assert m.call_id == "longreq.one" + "really" * 20 + "longcallid"
    assert m.from_.tag == "12" + "982" * 50 + "424"
    assert m.to.display == "I have a user name of " + "extreme" * 10 + " proportion"
    assert m.to.uri is not None and m.to.uri.port == 6000
    assert len(m.contacts) == 1 and len(m.body) == 150
    name = "Unknown-" + "Long" * 20 + "-Name"
    assert (m.header(name) or "").startswith("unknown-" + "long" * 20 + "-value;")


def check_dblreq(m: SipMsg) -> None:
    # 3.1.1.8 / RFC 3261 18.3: octets after Content-Length are discarded.
    assert m.method == "REGISTER" and m.body == b""
    assert b"INVITE" not in m.to_bytes()


def check_semiuri(m: SipMsg) -> None:
    # 3.1.1.9: ';' belongs to the user part when it comes before '@'.
    assert m.uri.user == "user;par=u%40example.net" and m.uri.host == "example.com"
    assert unescape(m.uri.user or "") == "user;par=u@example.net" and m.uri.params == {}
    assert m.headers("accept")[2] == "multipart/mixed" and len(m.headers("accept")) == 6


def check_transports(m: SipMsg) -> None:
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def check_mpart01(m: SipMsg) -> None:
    raw = load("mpart01")
    assert len(m.body) == 553 and raw.endswith(m.body)
    assert (m.content_type or "").startswith("multipart/mixed;boundary=")


def check_unreason(m: SipMsg) -> None:
    assert m.status == 200
    assert (
        m.reason
        == "= 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441\u0442\u043e\u0435"
    )


def check_noreason(m: SipMsg) -> None:
    assert (m.status, m.reason) == (100, "")
    assert m.to_bytes().startswith(b"SIP/2.0 100 \r\n")


# ------------------------------------------- 3.1.2 invalid, but the RFC allows liberal parsing
def check_lwsstart(m: SipMsg) -> None:
    # 3.1.2.9: extra SP between Request-Line elements; we are liberal (allowed) and the
    # bytes we forward keep them.
    assert m.method == "INVITE" and m.ruri == "sip:user@example.com"
    assert m.to_bytes().startswith(b"INVITE  sip:user@example.com  SIP/2.0\r\n")


def check_trws(m: SipMsg) -> None:
    # 3.1.2.10: SP after the version; liberal acceptance is allowed.
    assert m.method == "OPTIONS" and m.version == "SIP/2.0"


def check_baddate(m: SipMsg) -> None:
    # 3.1.2.12: a non-GMT Date may be accepted by an element that does not use Date.
    assert m.header("date") == "Fri, 01 Jan 2010 16:00:00 EST"


# ------------------------------------------------ 3.2 / 3.3 / 3.4: valid syntax, parser must cope
def check_badbranch(m: SipMsg) -> None:
    assert m.via.branch == "z9hG4bK"  # 3.2.1: only the cookie; transaction layer decides


def check_insuf(m: SipMsg) -> None:
    # 3.3.1: must not break; ideally 400. Reading a missing header is that 400.
    for read in (lambda: m.call_id, lambda: m.from_, lambda: m.to):
        raises(400, read)


def check_unkscm(m: SipMsg) -> None:
    raises(416, lambda: m.uri)  # 3.3.2: 416 Unsupported URI Scheme
    assert m.ruri == "nobodyKnowsThisScheme:totallyopaquecontent"


def check_novelsc(m: SipMsg) -> None:
    raises(416, lambda: m.uri)  # 3.3.3: soap.beep is not a scheme we route
    assert m.ruri == "soap.beep://192.0.2.103:3002"


def check_unksm2(m: SipMsg) -> None:
    # 3.3.4: registered non-SIP schemes in To/From/Contact parse; a registrar rejects the
    # To (no SIP AOR), which it sees as uri None.
    assert m.to.uri_text == "isbn:2983792873" and m.to.uri is None
    assert m.from_.uri_text == "http://www.example.com" and m.from_.uri is None
    assert m.contacts[0].uri_text == "name:John_Smith" and m.contacts[0].uri is None


def check_bext01(m: SipMsg) -> None:
    # 3.3.5: the lists a 420 is built from.
    assert m.require == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert m.proxy_require == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]


def check_invut(m: SipMsg) -> None:
    assert m.content_type == "application/unknownformat"  # 3.3.6: a UAS answers 415


def check_regaut01(m: SipMsg) -> None:
    assert (m.header("authorization") or "").startswith("NoOneKnowsThisScheme ")


def check_multi01(m: SipMsg) -> None:
    # 3.3.8: several values of single-valued headers: each read is a 400.
    for read in (lambda: m.call_id, lambda: m.to, lambda: m.from_, lambda: m.cseq,
                 lambda: m.max_forwards):  # fmt: skip
        raises(400, read)


def check_bcast(m: SipMsg) -> None:
    assert m.status == 200 and m.vias[1].host == "255.255.255.255"  # 3.3.10


def check_zeromf(m: SipMsg) -> None:
    assert m.max_forwards == 0  # 3.3.11: legal; a proxy answers 483


def check_cparam01(m: SipMsg) -> None:
    # 3.3.12: without <>, ;unknownparam is a contact parameter, not a URI parameter.
    (c,) = m.contacts
    assert c.params == {"unknownparam": None}
    assert c.uri is not None and c.uri.params == {} and c.uri.user == "+19725552222"


def check_cparam02(m: SipMsg) -> None:
    # 3.3.13: inside <>, it is a URI parameter.
    (c,) = m.contacts
    assert c.params == {} and c.uri is not None and c.uri.params == {"unknownparam": None}


def check_regescrt(m: SipMsg) -> None:
    # 3.3.14: a URI header escaped inside a bracketed Contact.
    (c,) = m.contacts
    assert c.uri is not None and unescape(c.uri.headers["Route"]) == "<sip:sip.example.com>"


def check_sdp01(m: SipMsg) -> None:
    assert m.headers("accept") == ["text/nobodyKnowsThis"]  # 3.3.15: a UAS answers 406


def check_inv2543(m: SipMsg) -> None:
    # 3.4.1: RFC 2543 syntax: no branch, no From tag, no Content-Length, no Max-Forwards;
    # the body is the rest of the datagram.
    assert m.via.branch is None and m.from_.tag is None
    assert m.content_length is None and m.max_forwards is None
    assert m.body.startswith(b"v=0\r\n") and m.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")


VALID: dict[str, Callable[[SipMsg], None]] = {
    "wsinv": check_wsinv,
    "intmeth": check_intmeth,
    "esc01": check_esc01,
    "escnull": check_escnull,
    "esc02": check_esc02,
    "lwsdisp": check_lwsdisp,
    "longreq": check_longreq,
    "dblreq": check_dblreq,
    "semiuri": check_semiuri,
    "transports": check_transports,
    "mpart01": check_mpart01,
    "unreason": check_unreason,
    "noreason": check_noreason,
    "lwsstart": check_lwsstart,
    "trws": check_trws,
    "baddate": check_baddate,
    "badbranch": check_badbranch,
    "insuf": check_insuf,
    "unkscm": check_unkscm,
    "novelsc": check_novelsc,
    "unksm2": check_unksm2,
    "bext01": check_bext01,
    "invut": check_invut,
    "regaut01": check_regaut01,
    "multi01": check_multi01,
    "bcast": check_bcast,
    "zeromf": check_zeromf,
    "cparam01": check_cparam01,
    "cparam02": check_cparam02,
    "regescrt": check_regescrt,
    "sdp01": check_sdp01,
    "inv2543": check_inv2543,
}

# Invalid messages: (status the RFC suggests, what raises it). "parse" means parse_datagram;
# otherwise the named property of the parsed message.
INVALID: dict[str, tuple[int, str]] = {
    "badinv01": (400, "via"),  # 3.1.2.1 empty params and list elements (Via and Contact)
    "clerr": (400, "parse"),  # 3.1.2.2 Content-Length beyond the datagram
    "ncl": (400, "parse"),  # 3.1.2.3 negative Content-Length
    "scalar02": (400, "cseq"),  # 3.1.2.4 CSeq >= 2**31 (and Max-Forwards, Expires)
    "scalarlg": (400, "cseq"),  # 3.1.2.5 a response: the element drops it
    "quotbal": (400, "to"),  # 3.1.2.6 unterminated quote in display name
    "ltgtruri": (400, "uri"),  # 3.1.2.7 <> around the Request-URI
    "lwsruri": (400, "parse"),  # 3.1.2.8 LWS inside the Request-URI
    "escruri": (400, "uri"),  # 3.1.2.11 headers in a Request-URI: rejecting is allowed
    "regbadct": (400, "contacts"),  # 3.1.2.13 URI with headers not in <>: rejecting allowed
    "badaspec": (400, "to"),  # 3.1.2.14 spaces inside <addr-spec>
    "baddn": (400, "from_"),  # 3.1.2.15 non-token characters in an unquoted display name
    "badvers": (505, "parse"),  # 3.1.2.16 SIP/7.0
    "mismatch01": (400, "cseq"),  # 3.1.2.17 CSeq method differs from the request method
    "mismatch02": (501, "cseq"),  # 3.1.2.18 ... and the method is unknown: 501 preferred
    "bigcode": (400, "parse"),  # 3.1.2.19 status code above 699: the response is dropped
    "mcl01": (400, "parse"),  # 3.3.9 conflicting Content-Length values: framing is lost
}


def test_every_corpus_file_has_an_expectation() -> None:
    names = {p.stem for p in CORPUS.glob("*.dat")}
    assert names, f"no RFC 4475 corpus at {CORPUS}"
    assert names == set(VALID) | set(INVALID)
    assert not set(VALID) & set(INVALID)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid(name: str) -> None:
    raw = load(name)
    m = parse_datagram(raw)
    VALID[name](m)
    # Unedited output is the input (minus datagram octets past Content-Length).
    out = m.to_bytes()
    assert raw.startswith(out)
    assert parse_datagram(out).to_bytes() == out
    # An edit keeps every other header as it was.
    edited = m.copy()
    edited.append_header("X-Edit", "1")
    again = parse_datagram(edited.to_bytes())
    assert list(again.iter_headers()) == [*m.iter_headers(), ("X-Edit", "1")]
    assert again.body == m.body


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid(name: str) -> None:
    status, where = INVALID[name]
    if where == "parse":
        raises(status, lambda: parse(name))
    else:
        m = parse(name)
        raises(status, lambda: getattr(m, where))


def test_scalar02_other_fields() -> None:
    m = parse("scalar02")
    raises(400, lambda: m.max_forwards)  # 300 > 255
    raises(400, lambda: m.expires)  # > 2**32-1; a registrar may use its default instead


def test_badinv01_contact_too() -> None:
    m = parse("badinv01")
    raises(400, lambda: m.contacts)


def test_baddn_to_too() -> None:
    raises(400, lambda: parse("baddn").to)


def test_clerr_on_a_stream_waits_for_more() -> None:
    # 3.1.2.2: over a stream, a short body just means more data is expected.
    sb = StreamBuffer()
    assert sb.feed(load("clerr")) == [] and not sb.failed and sb.pending > 0


@pytest.mark.parametrize("name", ["ncl", "mcl01"])
def test_bad_content_length_fails_a_stream(name: str) -> None:
    # 3.1.2.3 / 3.3.9: on a connection the framing is lost, the connection must be closed.
    sb = StreamBuffer()
    raises(400, lambda: sb.feed(load(name)))
    assert sb.failed
