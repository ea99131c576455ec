"""The compiled nonce paths (kemi_core.sip's nonce_seal / nonce_open) against the Python ones."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from kemi_auth import nonce
from kemi_auth.nonce import NC, OTN, NonceCodec, NonceStatus
from kemi_core.sip import nonce_open, nonce_seal

needs_c = pytest.mark.skipif(nonce_open is None, reason="kemi_core.sip._fast not built")

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. é"


@needs_c
def test_seal_is_keyed_blake2s_in_base64url() -> None:
    rng = random.Random(3)
    for _ in range(3_000):
        head, key = rng.randbytes(18), rng.randbytes(rng.randint(1, 32))
        raw = head + hashlib.blake2s(head, key=key, digest_size=16).digest()
        want = nonce.b2a_base64(raw, newline=False).translate(nonce._TO_URLSAFE).rstrip(b"=")
        assert nonce_seal(head, key) == want.decode()


@needs_c
def test_seal_and_open_refuse_wrong_arguments() -> None:
    with pytest.raises(TypeError):
        nonce_seal(b"short", b"k")
    with pytest.raises(ValueError):
        nonce_seal(bytes(18), b"")
    with pytest.raises(ValueError):
        nonce_open("x", bytes(33))
    assert nonce_open(b"A" * 46, b"k") is None  # (not a str: the Python path says no)


@needs_c
def test_made_nonces_are_the_python_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = NonceCodec("s3cret", expire=30)
    for flags in (0, NC, OTN, NC | OTN, 1, 0x0F):
        nonce.IDS[:] = [b"12345678", b"12345678"]
        made_c = codec.make(1_000_000.0, flags, b"bound")
        with monkeypatch.context() as m:
            m.setattr(nonce, "nonce_seal", None)
            assert codec.make(1_000_000.0, flags, b"bound") == made_c


def _mutations(text: str, rng: random.Random) -> list[str]:
    out = [text, text[:-1], text + "A", text[:-1] + "=", text.upper()]
    for i in range(len(text)):
        out.append(text[:i] + rng.choice(_ALPHABET) + text[i + 1:])
    out += [text[:-1] + c for c in _ALPHABET]  # the last character's unused bits
    return out


@needs_c
def test_open_answers_as_the_python_path() -> None:
    rng = random.Random(11)
    codec, other = NonceCodec("s3cret"), NonceCodec("another")
    answered = declined = 0
    for _ in range(60):
        flags = rng.choice((0, NC, OTN, NC | OTN, 2, 0x0F))
        made = [codec.make(rng.uniform(1e6, 2e9), flags, b"b"), other.make(1e6, flags)]
        # forged heads (version 2, checks bits without a binding MAC) under the right key
        head = nonce._HEAD.pack(rng.choice((1, 2)), rng.randrange(256), 5, 9, os.urandom(8))
        made.append(nonce_seal(head, codec.key))
        for text in made:
            for candidate in _mutations(text, rng):
                got = nonce_open(candidate, codec.key)
                want = codec.open(candidate, lambda _: b"b")
                if got is None:
                    declined += 1
                    continue
                answered += 1
                assert (got or None) == want, candidate
    assert answered > 1_000 and declined > 1_000  # both paths were exercised


@pytest.mark.parametrize("compiled", [True, False])
def test_check_rules_on_both_paths(compiled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not compiled:
        monkeypatch.setattr(nonce, "nonce_open", None)
        monkeypatch.setattr(nonce, "nonce_seal", None)
    elif nonce_open is None:
        pytest.skip("kemi_core.sip._fast not built")
    codec = NonceCodec("k", expire=30, max_drift=3)
    text = codec.make(1000.0, NC)
    ok = codec.check(text, 1010.0)
    assert ok.status is NonceStatus.OK and ok.expires == 1030 and ok.flags == NC
    assert codec.check(text, 1031.0).status is NonceStatus.STALE
    assert codec.check(text, 996.0).status is NonceStatus.STALE
    assert codec.check(text, 998.0).status is NonceStatus.OK
    assert NonceCodec("other").check(text, 1010.0).status is NonceStatus.INVALID
    bound = codec.make(1000.0, 3, b"a\x00b")
    assert codec.check(bound, 1001.0, lambda c: b"a\x00b" if c == 3 else b"").status is NonceStatus.OK
    assert codec.check(bound, 1001.0, lambda c: b"a\x00c").status is NonceStatus.STALE
