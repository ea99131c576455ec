"""The compiled verify (kemi_core.sip's digest_open / digest_response) against the Python path:
the same inputs through AuthApi.authenticate with and without it decide the same."""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

import pytest

import kemi_auth
from kemi_auth import digest
from kemi_auth.credentials import Credentials, parse_credentials
from kemi_auth.nonce import NC, OTN, NonceCodec
from kemi_auth.verify import STATE, AuthResult
from kemi_core.api import MsgContext
from kemi_core.sip import digest_ha1, digest_open, digest_response
from kemi_core.testing import context, offline_core, request

needs_c = pytest.mark.skipif(digest_open is None, reason="kemi_core.sip._fast not built")

SECRET = "verify-secret"
PASSWORDS = {"alice": "secret", "carol": "pässwörd"}
# RFC 7616 3.9.1 and RFC 2617 3.5: the documents' own examples.
RFC7616 = ("Mufasa", "http-auth@example.org", "Circle of Life", "GET", "/dir/index.html",
           "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "00000001",
           "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")


def _cred(user: str, realm: str, nonce: str, uri: str, response: str, qop: str = "",
          nc: str = "", cnonce: str = "") -> Credentials:
    return Credentials(user, realm, nonce, uri, response, "", cnonce, "", qop, nc, "")


@needs_c
@pytest.mark.parametrize(("algorithm", "expected"), [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_response_of_the_rfc7616_examples(algorithm: str, expected: str) -> None:
    user, realm, password, method, uri, nonce, nc, cnonce = RFC7616
    ha1 = digest.ha1(algorithm, user, realm, password)
    for response, right in ((expected, True), (expected.upper(), True), (expected[:-1], False),
                            (expected[:-1] + "0", expected[-1] == "0"), ("", False)):
        cred = _cred(user, realm, nonce, uri, response, "auth", nc, cnonce)
        assert digest_response(cred, ha1, method, digest.ALGORITHMS[algorithm]) is right
    # RFC 2617 3.5, and without qop: H(HA1:nonce:HA2)
    ha1 = digest.ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life")
    cred = _cred("Mufasa", "testrealm@host.com", "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 "/dir/index.html", "6629fae49393a05397450978507c4ef1", "auth", "00000001",
                 "0a4f113b")
    assert digest_response(cred, ha1, "GET", hashlib.md5) is True
    ha2 = digest.ha2("MD5", "GET", "/dir/index.html")
    cred = cred._replace(response=digest.response("MD5", ha1, cred.nonce, ha2), qop="")
    assert digest_response(cred, ha1, "GET", hashlib.md5) is True


@needs_c
def test_response_answers_as_response_matches() -> None:
    rng = random.Random(5)
    texts = ["alice", "sip:bob@127.0.0.1", "ünïcode", "a\udcffb", "", "x:y", "ÿ" * 40]
    for _ in range(3_000):
        algorithm = rng.choice(tuple(digest.ALGORITHMS))
        qop = rng.choice(("", "auth", "AUTH", "Auth"))
        ha1 = rng.choice((digest.ha1(algorithm, "u", "r", "p"), rng.choice(texts)))
        method, uri = rng.choice(("REGISTER", "INVITE", "méthode")), rng.choice(texts)
        nonce, nc, cnonce = rng.choice(texts), rng.choice(("00000001", "")), rng.choice(texts)
        want = digest.response(algorithm, ha1, nonce, digest.ha2(algorithm, method, uri, qop),
                               qop, nc, cnonce)
        received = rng.choice((want, want.upper(), want[1:], want + "0", "é" * len(want),
                               want[:-1] + ("0" if want[-1] != "0" else "1")))
        cred = _cred("u", "r", nonce, uri, received, qop, nc, cnonce)
        args = (algorithm, ha1, method, uri, nonce, qop, nc, cnonce, b"", received)
        hash_fn = digest.ALGORITHMS[algorithm]
        assert digest_response(cred, ha1, method, hash_fn) is digest.response_matches(*args)


@needs_c
def test_ha1_is_the_python_one() -> None:
    rng = random.Random(7)
    texts = ["alice", "127.0.0.1", "ünïcode", "a\udcffb", "", "x:y", "pässwörd"]
    for _ in range(500):
        algorithm = rng.choice(tuple(digest.ALGORITHMS))
        args = (rng.choice(texts), rng.choice(texts), rng.choice(texts))
        assert digest_ha1(digest.ALGORITHMS[algorithm], *args) == digest.ha1(algorithm, *args)
    assert digest_ha1(hashlib.md5, *RFC7616[:3]) == digest.ha1("MD5", *RFC7616[:3])


@needs_c
def test_response_refuses_what_it_does_not_compute() -> None:
    cred = _cred("u", "r", "n", "sip:x", "0" * 32, "Auth-Int", "00000001", "c")
    with pytest.raises(ValueError):
        digest_response(cred, "h", "INVITE", hashlib.md5)
    with pytest.raises(TypeError):
        digest_response(cred._replace(qop=""), b"h", "INVITE", hashlib.md5)
    with pytest.raises(TypeError):
        digest_ha1(hashlib.md5, "u", None, "p")
    with pytest.raises(UnicodeEncodeError):  # (as str.encode of a lone surrogate outside \udc80-)
        digest_ha1(hashlib.md5, "u", "\ud800", "p")
    with pytest.raises(TypeError):
        digest_open("Digest x=y", "r", 0.0, (b"k", 3, "MD5", dict))


# ---- authenticate with and without the compiled path ------------------------------------
def _api(params: dict[tuple[str, str], Any], compiled: bool) -> tuple[Any, Any]:
    core, _ = offline_core(("auth", kemi_auth), params={("auth", "secret"): SECRET, **params})
    auth = kemi_auth.api()
    if not compiled:
        auth.fast = None
    return core, auth


def _lookup(cred: Credentials, algorithm: str) -> str | int:
    password = PASSWORDS.get(cred.username.partition("@")[0])
    if password is None:
        return AuthResult.USER_UNKNOWN
    return digest.ha1(algorithm, cred.username, cred.realm, password)


class _Pick:
    """rng.choice, but the first option (the usual one) for every field but ``vary`` (one
    field, or all with "*")."""

    def __init__(self, rng: random.Random, vary: str) -> None:
        self.rng, self.vary = rng, vary

    def __call__(self, field: str, options: tuple[Any, ...]) -> Any:
        return self.rng.choice(options) if self.vary in (field, "*") else options[0]


FIELDS = ("realm", "user", "password", "uri", "flags", "issued", "nonce", "mutate", "alg",
          "qop", "nc", "cnonce", "body", "response", "algparam", "opaque", "sep", "scheme")


def _value(rng: random.Random, codec: NonceCodec, now: float, usual_alg: str = ""
           ) -> tuple[str, str, str, str]:
    """(method, realm, header value, body) of a random request's credentials: the usual shape
    (SIPp's -au/-ap: no spaces, or qop=auth) with one field varied, or every field."""
    pick = _Pick(rng, rng.choice((*FIELDS, "*", "*", "", "")))
    method = rng.choice(("REGISTER", "INVITE", "MESSAGE"))
    realm = pick("realm", ("127.0.0.1", "Example.com", "other.example"))
    user = pick("user", ("alice", "carol", "bob", "alice@127.0.0.1"))
    password = pick("password", ("secret", "pässwörd", "wrong"))
    uri = pick("uri", ("sip:127.0.0.1:5060", "sip:bob@127.0.0.1", "sip:x@[::1];transport=tcp"))
    flags = pick("flags", (0, NC, OTN, NC | OTN, 3))
    issued = now + pick("issued", (0, -1000, -270, 2, 10))
    nonce = pick("nonce", (codec.make(issued, flags, b"bound") if flags else codec.make(issued),
                           NonceCodec("forged").make(now), "not-a-nonce"))
    if pick("mutate", (False, True)):
        i = rng.randrange(len(nonce))
        nonce = nonce[:i] + rng.choice("A-_z0é") + nonce[i + 1:]
    alg_name = pick("alg", (usual_alg, "", "MD5", "md5", "SHA-256", "sha-256", "SHA-512-256"))
    alg = digest.canonical_algorithm(alg_name) or "MD5"
    qop = pick("qop", (rng.choice(("", "auth")), "AUTH", "auth-int", "bogus"))
    nc = pick("nc", ("00000001", "0000000a", "0000000G", "1", ""))
    cnonce = pick("cnonce", ("6b8b4567", ""))
    body = pick("body", ("", "v=0\r\n"))
    ha1 = digest.ha1(alg, user, realm, password)
    h2 = digest.ha2(alg, method, uri, qop, body.encode())
    response = digest.response(alg, ha1, nonce, h2, qop, nc, cnonce)
    response = pick("response", (response, response.upper(), response[:-2], "0" * 32))
    params = [f'username="{user}"', f'realm="{realm}"', f'uri="{uri}"', f'nonce="{nonce}"',
              f'response="{response}"']
    if alg_name or pick("algparam", (True, False)):
        params.append(f"algorithm={alg_name or 'MD5'}")
    if qop:
        params += [f"qop={qop}", f"nc={nc}", f'cnonce="{cnonce}"']
    if pick("opaque", (False, True)):
        params.append('opaque="x"')
    if pick("sep", (False, True)):
        rng.shuffle(params)
    sep = pick("sep", (",", ", ", ",  "))
    scheme = pick("scheme", ("Digest", "digest", "Basic"))
    return method, realm, f"{scheme} {sep.join(params)}", body


def _authenticate(core: Any, auth: Any, method: str, headers: list[tuple[str, str]], body: str,
                  realm: str, hf: str) -> tuple[int, Any, bool]:
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers)
    ctx: MsgContext = context(core, request(method, "sip:bob@127.0.0.1", 5070, extra=extra,
                                            body=body))
    rc = auth.authenticate(ctx, realm, hf, _lookup)
    st = ctx.mod_state.get(STATE)
    return rc, st.authorized if st is not None else None, bool(st is not None and st.stale)


@needs_c
@pytest.mark.parametrize("params", [
    {},
    {("auth", "algorithm"): "SHA-256"},
    {("auth", "algorithm"): "SHA-512-256"},
    {("auth", "nonce_count"): 1, ("auth", "one_time_nonce"): 1},
    {("auth", "realm_prefix"): "sip."},
], ids=["default", "sha256", "sha512-256", "replay", "prefix"])
def test_authenticate_decides_as_the_python_path(params: dict[tuple[str, str], Any]) -> None:
    rng = random.Random(17)
    fast_core, fast = _api(params, True)
    py_core, py = _api(params, False)
    assert fast.fast is not None and py.fast is None
    codec = NonceCodec(SECRET)
    now = time.time()
    opened = 0
    seen: set[int] = set()
    for _ in range(3_000):
        method, realm, value, body = _value(rng, codec, now, fast.fast[2].replace("MD5", ""))
        if rng.random() < 0.2:  # the realm the script checks is not the one answered
            realm = rng.choice(("sip.127.0.0.1", "example.com", "Example.com"))
        elif params.get(("auth", "realm_prefix")) and rng.random() < 0.5:
            realm = "sip." + realm
        hf = rng.choice(("Authorization", "Proxy-Authorization"))
        headers = [(hf, value)]
        if rng.random() < 0.1:  # a second credentials header
            headers.append((rng.choice(("Authorization", "Proxy-Authorization")),
                            _value(rng, codec, now, rng.choice(("", "SHA-256")))[2]))
        if digest_open(value, fast.strip_realm(realm), time.time(), fast.fast) is not None:
            opened += 1
            assert parse_credentials(value) == digest_open(
                value, fast.strip_realm(realm), time.time(), fast.fast)
        got = _authenticate(fast_core, fast, method, headers, body, realm, hf)
        want = _authenticate(py_core, py, method, headers, body, realm, hf)
        assert got == want, (value, realm, hf)
        seen.add(got[0])
    assert opened > 300  # the compiled path answered often enough to be tested
    assert {AuthResult.OK, AuthResult.INVALID_PASSWORD, AuthResult.NO_CREDENTIALS,
            AuthResult.STALE_NONCE, AuthResult.ERROR} <= seen
    if not params:
        assert AuthResult.USER_UNKNOWN in seen


@needs_c
def test_open_declines_what_the_python_path_decides() -> None:
    codec = NonceCodec(SECRET, expire=30, max_drift=3)
    conf = (codec.key, 3, "MD5", Credentials)
    good = codec.make(1000.0)
    value = ('Digest username="alice",realm="r",uri="sip:r",nonce="{n}",response="{r}",'
             'algorithm=MD5')
    base = value.format(n=good, r="0" * 32)
    cred = digest_open(base, "r", 1010.0, conf)
    assert type(cred) is Credentials and cred == parse_credentials(base)
    assert digest_open(base, "R", 1010.0, conf) is None  # another realm
    assert digest_open(base, "r", 1031.0, conf) is None  # expired
    assert digest_open(base, "r", 996.0, conf) is None  # from the future
    assert digest_open(base, "r", 997.0, conf) is not None  # (within max_drift)
    assert digest_open(base, "r", 1010.0, (codec.key, 3, "SHA-256", Credentials)) is None
    assert digest_open(base.replace("MD5", "SHA-256"), "r", 1010.0,
                       (codec.key, 3, "SHA-256", Credentials)) is not None
    for flags in (NC, OTN, 1):
        assert digest_open(value.format(n=codec.make(1000.0, flags, b"b"), r="0" * 32), "r",
                           1010.0, conf) is None
    assert digest_open(value.format(n=NonceCodec("x").make(1000.0), r="0"), "r", 1010.0,
                       conf) is None
    assert digest_open(base.replace("MD5", "md5"), "r", 1010.0, conf) is None
    assert digest_open(base.replace(",algorithm=MD5", ""), "r", 1010.0, conf) is not None
    qop = base + ",qop=auth,nc={nc},cnonce={c}"
    assert digest_open(qop.format(nc="0000000f", c="x"), "r", 1010.0, conf) is not None
    for nc, cnonce in (("0000000g", "x"), ("1", "x"), ("0000000f", '""')):
        assert digest_open(qop.format(nc=nc, c=cnonce), "r", 1010.0, conf) is None
    assert digest_open(base + ",qop=auth-int,nc=00000001,cnonce=x", "r", 1010.0, conf) is None
    assert digest_open(base.replace("Digest", "Basic"), "r", 1010.0, conf) is None
