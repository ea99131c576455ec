"""SIP, SIPS and tel URIs."""

from __future__ import annotations

import pytest

from kemi_core.sip import SipParseError, SipUri
from kemi_core.sip import uri as uri_mod
from kemi_core.sip.uri import parse_uri, parse_uri_shared, unescape


def test_full_sip_uri() -> None:
    u = parse_uri(
        "sip:alice:secret@atlanta.example.com:5060;transport=TCP;lr;maddr=1.2.3.4?subject=x&h=1"
    )
    assert (u.scheme, u.user, u.password, u.host, u.port) == (
        "sip", "alice", "secret", "atlanta.example.com", 5060,
    )  # fmt: skip
    assert u.params == {"transport": "TCP", "lr": None, "maddr": "1.2.3.4"}
    assert u.transport == "tcp"
    assert u.headers == {"subject": "x", "h": "1"}
    assert u.hostport == "atlanta.example.com:5060"


def test_minimal_and_case() -> None:
    u = parse_uri("SIPS:example.com")
    assert (u.scheme, u.user, u.host, u.port, u.params) == ("sips", None, "example.com", None, {})
    assert str(u) == "sips:example.com"
    assert parse_uri("sip:a@B.example;TRANSPORT=udp").params == {"transport": "udp"}


def test_ipv6_reference() -> None:
    u = parse_uri("sip:bob@[2001:db8::10]:5070;transport=udp")
    assert u.host == "[2001:db8::10]" and u.port == 5070
    assert parse_uri("sip:[::1]").host == "[::1]" and parse_uri("sip:[::1]").port is None
    for bad in ("sip:[2001:db8::10", "sip:[2001:db8::10]x", "sip:[zz::1]"):
        with pytest.raises(SipParseError):
            parse_uri(bad)


def test_escapes_are_kept_and_decodable() -> None:
    u = parse_uri("sip:%61lice%20b@example.com;n%61me=v%41")
    assert u.user == "%61lice%20b" and unescape(u.user) == "alice b"
    assert u.params == {"n%61me": "v%41"}
    assert unescape("100%") == "100%" and unescape("%zz") == "%zz"


def test_user_with_semicolon_and_question_mark() -> None:
    u = parse_uri("sip:user;par=u%40example.net@example.com")
    assert u.user == "user;par=u%40example.net" and u.host == "example.com" and u.params == {}


def test_tel_uri() -> None:
    u = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert (u.scheme, u.user, u.host) == ("tel", "+1-201-555-0123", "")
    assert u.params == {"phone-context": "example.com"}
    assert str(u) == "tel:+1-201-555-0123;phone-context=example.com"


def test_str_and_with() -> None:
    u = parse_uri("sip:alice@example.com:5060;lr")
    assert str(u) == "sip:alice@example.com:5060;lr"
    v = u.with_(host="other.example", port=None)
    assert str(v) == "sip:alice@other.example;lr" and u.host == "example.com"
    assert isinstance(v, SipUri) and v != u


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("nobody:opaque", 416),
        ("http://example.com/", 416),
        ("sip:", 400),
        ("sip:@example.com", 400),
        ("sip:a@", 400),
        ("sip:a b@example.com", 400),
        ("sip:a@example.com:99999", 400),
        ("sip:a@example.com:12x", 400),
        ("sip:a@exa mple.com", 400),
        ("<sip:a@example.com>", 400),
        ("sip:a@example.com;", 400),
        ("sip:a@example.com?", 400),
        ("1sip:a@b", 400),
        ("no-colon", 400),
        ("tel:", 400),
    ],
)
def test_bad_uris(text: str, status: int) -> None:
    with pytest.raises(SipParseError) as ei:
        parse_uri(text)
    assert ei.value.status == status


def test_shared_parse_gives_one_object_per_text_and_keeps_no_error() -> None:
    a = parse_uri_shared("sip:alice@example.com;transport=tcp")
    assert a == parse_uri("sip:alice@example.com;transport=tcp")
    assert parse_uri_shared("sip:alice@example.com;transport=tcp") is a
    assert parse_uri("sip:alice@example.com;transport=tcp") is not a  # parse_uri: a new one
    for _ in range(2):  # an error is raised each time, never kept
        with pytest.raises(SipParseError):
            parse_uri_shared("sip:@example.com")
    assert "sip:@example.com" not in uri_mod._SHARED


def test_shared_parse_memo_is_bounded() -> None:
    for i in range(uri_mod._SHARED_MAX + 5):
        parse_uri_shared(f"sip:u{i}@example.com")
    assert len(uri_mod._SHARED) <= uri_mod._SHARED_MAX


def test_name_addr_uris_of_one_text_are_shared() -> None:
    from kemi_core.sip import parse_name_addr

    one = parse_name_addr("<sip:bob@example.com>;tag=1")
    two = parse_name_addr('"Bob" <sip:bob@example.com>;tag=2')
    assert one.uri is not None and one.uri is two.uri


def test_parse_uri_gives_a_new_object_each_time_from_the_memo() -> None:
    text = "sip:carol@example.com:5070;transport=tcp;lr?subject=x"
    a = parse_uri(text)
    a.params["lr"] = "changed"
    a.headers["subject"] = "changed"
    a.host = "other.example"
    b = parse_uri(text)
    assert b is not a and b.host == "example.com"
    assert b.params == {"transport": "tcp", "lr": None} and b.headers == {"subject": "x"}
    assert parse_uri_shared(text) == b  # the memo's own was not touched either
