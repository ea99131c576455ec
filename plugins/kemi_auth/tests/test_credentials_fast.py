"""The compiled credentials reader (kemi_core.sip._fast.digest_fields) against the Python parser
(parse_credentials_py): the same Credentials whenever it answers, None wherever Python raises;
the nonce's base64url steps against the base64 module's."""

from __future__ import annotations

import base64
import binascii
import random

import pytest

from kemi_auth.credentials import (
    Credentials,
    MalformedCredentials,
    OverlongCredentials,
    digest_fields,
    parse_credentials,
    parse_credentials_py,
)
from kemi_auth.nonce import NonceCodec, NonceStatus, _decode

needs_c = pytest.mark.skipif(digest_fields is None, reason="kemi_core.sip._fast not built")

SIPP = ('Digest username="alice",realm="127.0.0.1",uri="sip:127.0.0.1:5060",'
        'nonce="AQAAZ2Vx-AAAZ2VyKBcD_abcdefghijklmnopqrstuvw",response="0123456789abcdef0123456789abcdef",'
        'algorithm=MD5')
FULL = ('Digest username="bob@example.com", realm="example.com", nonce="n1", uri="sip:x", '
        'response="abc", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0", opaque="op"')


def reference(value: str) -> Credentials | type[ValueError]:
    try:
        return parse_credentials_py(value)
    except ValueError as exc:
        return type(exc)


def compiled(value: str) -> Credentials | None:
    assert digest_fields is not None
    fields = digest_fields(value)
    return None if fields is None else Credentials(*fields)


def check(value: str) -> bool:
    """Whether the compiled reader answered; asserts it agrees with the reference when it did,
    and that it left every error (and what it declined) to the reference."""
    got = compiled(value)
    want = reference(value)
    if got is not None:
        assert isinstance(want, Credentials), (value, want)
        assert tuple(got) == tuple(want), value
    assert parse_credentials(value) == want if isinstance(want, Credentials) else True
    return got is not None


@needs_c
@pytest.mark.parametrize("value", [
    SIPP, FULL, "  " + FULL + " ,\t", FULL.replace("Digest", "dIgEsT"),
    FULL.replace(", ", ",").replace("=", " = "), FULL.replace(", ", " ,\t,, "),
    FULL.replace("username=", "USERNAME=").replace("realm=", "Realm="),
    FULL + ', username="other", realm="r2", extra=token, x-y="quoted, with = signs"',
    FULL.replace('realm="example.com"', "realm=example.com"),
    FULL + ', algorithm=SHA-256, nc=00000002',  # repeated: the first counts
    FULL.replace('opaque="op"', 'opaque=""'), FULL.replace("nc=00000001", "nc="),
])
def test_usual_shapes_are_read_in_c_as_in_python(value: str) -> None:
    assert check(value)


@needs_c
@pytest.mark.parametrize("value", [
    FULL.replace('username="bob@example.com"', 'username="b\\"ob"'),  # escape
    FULL.replace("bob", "bøb"),  # not ASCII
    FULL.replace(", realm", ",\r\n realm"),  # control characters
    FULL.replace("Digest ", "Digest\t"), "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Digest", "Digest ",
    FULL.replace('realm="example.com", ', ""), FULL.replace('response="abc"', 'response=""'),
    FULL + ", userhash=false", FULL + ", userhash=true",
    FULL.replace('"n1"', '"' + "n" * 257 + '"'), FULL.replace("abc", "0" * 129),
    FULL.replace('"sip:x"', '"' + "u" * 2049 + '"'), FULL + ", other=" + "x" * 257,
    FULL + "".join(f", p{i}=1" for i in range(20)), FULL + ", x=" + "y" * 5000,
    FULL.replace('"c0"', '"c0'), FULL.replace("nc=00000001", 'nc=00"01"'),
    FULL.replace("qop=auth", "qop=auth extra"), FULL.replace("qop=auth", "=auth"),
    FULL.replace("qop=auth", "qop auth"), FULL.replace("qop=auth", "q(op=auth"),
    FULL.replace(", realm", " realm"),
])
def test_other_shapes_are_left_to_python(value: str) -> None:
    assert not check(value)


@needs_c
def test_overlong_and_malformed_still_raise() -> None:
    with pytest.raises(OverlongCredentials):
        parse_credentials(FULL.replace('"n1"', '"' + "n" * 300 + '"'))
    with pytest.raises(MalformedCredentials):
        parse_credentials(FULL.replace('response="abc", ', ""))


_NAMES = ["username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "opaque",
          "qop", "nc", "userhash", "UserName", "NONCE", "x", "other-name", "p'q", ""]
_PIECES = ['"', "\\", ",", " ", "\t", "=", "a", "Z", "0", ":", "@", ";", "é", "\x00", "\n",
           "\x1f", "\xa0", "(", "~"]


def _value(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return "".join(rng.choice(_PIECES) for _ in range(rng.randrange(4)))
    size = rng.choice([0, 1, 5, 8, 9, 40, 260])
    if rng.random() < 0.6:
        return '"' + "".join(rng.choice("abcXYZ019:@.-_ ,=") for _ in range(size)) + '"'
    return "".join(rng.choice("abcXYZ019:@.-_") for _ in range(size))


def _header(rng: random.Random) -> str:
    params = [f'{name}="v{name}"' for name in ("username", "realm", "nonce", "uri", "response")]
    for _ in range(rng.randrange(6)):
        eq = "" if rng.random() < 0.05 else rng.choice(["=", " = ", "\t=", "="])
        params.append(f"{rng.choice(_NAMES)}{eq}{_value(rng)}")
    rng.shuffle(params)
    if rng.random() < 0.1:
        params = params[:rng.randrange(len(params) + 1)]
    seps = [", ", ",", " ,\t", ",,"]
    text = "".join(p + (" " if rng.random() < 0.02 else rng.choice(seps)) for p in params)
    scheme = rng.choice(["Digest ", "digest  ", "DIGEST ", "Digest ", "Basic ", "Digest\t"])
    return rng.choice(["", " ", "\t"]) + scheme + text + rng.choice(["", " ", ",", " , "])


@needs_c
def test_random_shapes_agree() -> None:
    rng = random.Random(17)
    answered = sum(check(_header(rng)) for _ in range(20_000))
    assert 3_000 < answered < 17_000  # both paths were exercised


def test_nonce_text_decodes_as_base64_urlsafe_b64decode() -> None:
    rng = random.Random(7)
    alphabet = "AZaz09-_+/=. é\n"
    for _ in range(5_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(70)))
        try:
            want: bytes | None = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            want = None
        assert _decode(text) == (want if len(text) <= 64 else None), text


def test_nonce_made_is_base64_urlsafe_without_padding() -> None:
    codec = NonceCodec("s3cret")
    for flags in (0, 1, 0x10):
        text = codec.make(1_000_000.0, flags, b"bound")
        assert "=" not in text and _decode(text) == base64.urlsafe_b64decode(text + "==")
        assert codec.check(text, 1_000_001.0, lambda _: b"bound").status is NonceStatus.OK


def test_nonce_ids_are_all_different_and_a_forked_child_draws_its_own() -> None:
    import os

    from kemi_auth import nonce

    codec = NonceCodec("s3cret")
    ids = {_decode(codec.make(1_000_000.0))[10:18] for _ in range(3 * nonce._ID_BATCH)}  # type: ignore[index]
    assert len(ids) == 3 * nonce._ID_BATCH
    assert nonce.IDS  # some drawn ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own batch, not the parent's
        os.write(write, b"1" if not nonce.IDS else b"0")
        os._exit(0)
    os.close(write)
    assert os.read(read, 1) == b"1"
    os.close(read)
    os.waitpid(pid, 0)
