"""auth's sans-IO layers: the credentials parser, the digest computations, nonces."""

from __future__ import annotations

import pytest

from kemi_auth import digest
from kemi_auth.credentials import (
    MalformedCredentials,
    OverlongCredentials,
    parse_credentials,
    parse_params,
    realm_of,
)
from kemi_auth.nonce import NonceCodec, NonceStatus

# RFC 7616 3.9.1 (and RFC 2617 3.5): the documents' own examples.
RFC7616 = dict(username="Mufasa", realm="http-auth@example.org", password="Circle of Life",
               nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", uri="/dir/index.html",
               cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", nc="00000001")


@pytest.mark.parametrize(("algorithm", "expected"), [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_examples(algorithm: str, expected: str) -> None:
    v = RFC7616
    h1 = digest.ha1(algorithm, v["username"], v["realm"], v["password"])
    h2 = digest.ha2(algorithm, "GET", v["uri"], "auth")
    assert digest.response(algorithm, h1, v["nonce"], h2, "auth", v["nc"], v["cnonce"]) == expected


def test_rfc2617_example_and_no_qop() -> None:
    h1 = digest.ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
    h2 = digest.ha2("MD5", "GET", "/dir/index.html")
    assert digest.response("MD5", h1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", h2, "auth",
                           "00000001", "0a4f113b") == "6629fae49393a05397450978507c4ef1"
    # without qop: H(HA1:nonce:HA2)
    assert digest.response("MD5", h1, "n", h2) == digest.hexdigest("MD5", f"{h1}:n:{h2}")


def test_auth_int_hashes_the_body() -> None:
    a = digest.ha2("MD5", "INVITE", "sip:b@x", "auth-int", b"v=0\r\n")
    b = digest.ha2("MD5", "INVITE", "sip:b@x", "auth-int", b"v=1\r\n")
    assert a != b and a != digest.ha2("MD5", "INVITE", "sip:b@x", "auth")


def test_algorithm_names_and_compare() -> None:
    assert digest.canonical_algorithm("") == "MD5"
    assert digest.canonical_algorithm("sha-256") == "SHA-256"
    assert digest.canonical_algorithm("MD5-sess") is None
    assert digest.same("ABCDEF", "abcdef") and not digest.same("abcdef", "abcdee")
    assert not digest.same("abc", "abcd") and not digest.same("abc", "é")


def test_parse_credentials_quoted_tokens_and_escapes() -> None:
    c = parse_credentials('Digest username="al\\"ice", realm="r, x", nonce="n", '
                          'uri="sip:x", response="abc", algorithm=MD5, qop=auth, nc=00000001, '
                          'cnonce="c", opaque=""')
    assert (c.username, c.realm, c.nonce, c.algorithm, c.qop, c.nc, c.cnonce) == (
        'al"ice', "r, x", "n", "MD5", "auth", "00000001", "c")
    assert c.user == 'al"ice' and c.domain == "r, x"
    c2 = parse_credentials('digest USERNAME="bob@example.com",realm="r",nonce="n",uri="u",'
                           'response="r"')
    assert (c2.user, c2.domain) == ("bob", "example.com")


@pytest.mark.parametrize("value", [
    "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
    "Digest foo",
    'Digest username="alice, realm="r"',
    'Digest username="a", realm="r", nonce="n", uri="u"',  # no response
    'Digest username="a", realm="r", nonce="n", uri="u", response="x", userhash=true',
])
def test_malformed_credentials(value: str) -> None:
    with pytest.raises(MalformedCredentials):
        parse_credentials(value)


@pytest.mark.parametrize("value", [
    'Digest username="' + "a" * 300 + '", realm="r", nonce="n", uri="u", response="x"',
    'Digest username="a", realm="r", nonce="n", uri="u", response="' + "0" * 129 + '"',
    'Digest username="a", realm="' + "r" * 2000 + '", nonce="n", uri="u", response="x"',
    'Digest username="a", realm="r", nonce="n", uri="' + "u" * 3000 + '", response="x"',
    "Digest " + ", ".join(f"p{i}=1" for i in range(40)),
    "Digest x=" + "y" * 5000,
])
def test_overlong_credentials(value: str) -> None:
    with pytest.raises(OverlongCredentials):
        parse_credentials(value)


@pytest.mark.parametrize(("plain", "escaped"), [
    ('Digest username="alice",realm="r, x",nc=00000001,opaque=""',
     'Digest username="al\\ice",realm="r, x",nc=00000001,opaque=""'),
    ('Digest , a="1" ,\tB=2,,  a="3"', 'Digest , a="\\1" ,\tB=2,,  a="3"'),
])
def test_parse_params_reads_the_same_with_and_without_escapes(plain: str, escaped: str) -> None:
    # without a backslash the parameters are read in one pass (findall), with one one by one
    assert parse_params(plain) == parse_params(escaped)


@pytest.mark.parametrize("value", [
    'Digest a="1", b c="2"',  # unreadable in the middle: not read over
    'Digest a="1"x, b="2"',
    'Digest a="1", b="2',
    'Digest a="1", b="\\2',
])
def test_parse_params_unreadable_text_is_malformed(value: str) -> None:
    with pytest.raises(MalformedCredentials, match="unreadable parameters at"):
        parse_params(value)


def test_parse_params_unreadable_before_overlong_is_malformed() -> None:
    # in order: the unreadable part comes first, so the value is malformed, not overlong
    with pytest.raises(MalformedCredentials):
        parse_params('Digest a=1 b, nonce="' + "n" * 300 + '"')
    with pytest.raises(OverlongCredentials):
        parse_params('Digest nonce="' + "n" * 300 + '", a=1 b')


def test_realm_of_never_raises() -> None:
    assert realm_of('Digest realm="a.b", username="u"') == "a.b"
    assert realm_of("Basic x") is None and realm_of("Digest " + "x" * 5000) is None


def test_nonce_roundtrip_expiry_drift_and_forgery() -> None:
    codec = NonceCodec("s3cret", expire=30, max_drift=3)
    n = codec.make(1000.0)
    assert n != codec.make(1000.0)  # a random id in each
    ok = codec.check(n, 1010.0)
    assert ok.status is NonceStatus.OK and len(ok.nid) == 8 and ok.expires == 1030
    assert codec.check(n, 1031.0).status is NonceStatus.STALE
    assert codec.check(n, 990.0).status is NonceStatus.STALE  # issued 10 s in the future
    assert codec.check(n, 998.0).status is NonceStatus.OK  # within the drift
    other = NonceCodec("another secret").check(n, 1010.0)
    assert other.status is NonceStatus.INVALID
    for bad in (n[:-2] + ("AA" if n[-2:] != "AA" else "BB"), n[:-1], "", "!!!!", "A" * 300):
        assert codec.check(bad, 1010.0).status is NonceStatus.INVALID


def test_nonce_expiry_cannot_be_extended() -> None:
    import base64
    codec = NonceCodec("k", expire=30)
    raw = bytearray(base64.urlsafe_b64decode(codec.make(1000.0) + "=="))
    raw[6:10] = (999999).to_bytes(4, "big")  # a later expiry, same MAC
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert codec.check(forged, 1100.0).status is NonceStatus.INVALID


def test_nonce_bound_to_the_message() -> None:
    codec = NonceCodec("k")
    n = codec.make(1000.0, flags=3, binding=b"sip:r\x00call-1")
    assert codec.check(n, 1001.0, lambda c: b"sip:r\x00call-1").status is NonceStatus.OK
    assert codec.check(n, 1001.0, lambda c: b"sip:r\x00call-2").status is NonceStatus.STALE
    assert codec.check(n, 1001.0).status is NonceStatus.STALE
