"""Nonces bound to the server's secret, with an expiry and (optionally) the challenged message.

A nonce is base64url (no padding) of::

    version(1) flags(1) issued(4) expires(4) id(8) mac(16) [binding mac(8)]

``mac`` is keyed BLAKE2s (a MAC by design, and several times cheaper than HMAC through
OpenSSL 3) over the first 18 bytes, under a key derived from the ``secret`` modparam: a client
cannot make, change or extend a nonce. ``id`` is random: it names the nonce
in the replay state. ``flags`` holds Kamailio's auth_checks_* mask in its low bits (1 R-URI,
2 Call-ID, 4 From tag, 8 source IP: the binding MAC covers those parts of the challenged
request, so a nonce answered from elsewhere is stale) and which replay rules the nonce was
issued under (:data:`NC`, :data:`OTN`). Sans-IO: time is passed in.
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import hmac
import os
import struct
from binascii import a2b_base64, b2a_base64
from collections.abc import Callable
from hashlib import blake2s
from hmac import compare_digest
from typing import NamedTuple

from kemi_core.sip import nonce_open, nonce_seal  # (None when kemi_core.sip._fast is not built)

_HEAD = struct.Struct(">BBII8s")
_VERSION = 1
_MAC = 16
_BIND_MAC = 8
_PLAIN = _HEAD.size + _MAC
#: Longest nonce text we make (the parser refuses longer ones before they reach us).
MAX_TEXT = 64
#: The auth_checks bits of the flags byte.
CHECKS = 0x0F
#: Issued with qop under nonce_count: responses carrying nc are counted.
NC = 0x10
#: Issued under one_time_nonce: a response without nc is good once.
OTN = 0x20


class NonceStatus(enum.Enum):
    OK = "ok"
    STALE = "stale"  # ours, but expired, from the future, or answered for another message
    INVALID = "invalid"  # not ours (forged, changed, truncated)


class NonceCheck(NamedTuple):
    """What check() found (a named tuple: made for every authenticated request)."""

    status: NonceStatus
    nid: bytes = b""
    expires: int = 0
    flags: int = 0


def derive_keys(secret: str | bytes) -> tuple[bytes, bytes]:
    """Two independent keys from the secret: one signs nonces, one binds them to messages."""
    raw = secret.encode() if isinstance(secret, str) else secret
    return (hmac.new(raw, b"kemi-auth nonce", hashlib.sha256).digest(),
            hmac.new(raw, b"kemi-auth binding", hashlib.sha256).digest())


class NonceCodec:
    """Makes and checks nonces. ``expire`` and ``max_drift`` are seconds (Kamailio's
    nonce_expire and nonce_auth_max_drift)."""

    def __init__(self, secret: str | bytes, expire: int = 300, max_drift: int = 3) -> None:
        self.key, self.bind_key = derive_keys(secret)
        self.expire = expire
        self.max_drift = max_drift

    def make(self, now: float, flags: int = 0, binding: bytes = b"") -> str:
        issued = int(now)
        nid = IDS.pop() if IDS else more_ids()
        head = _HEAD.pack(_VERSION, flags & 0xFF, issued, issued + self.expire, nid)
        if nonce_seal is not None and not flags & CHECKS:  # the usual nonce, sealed in C
            return nonce_seal(head, self.key)  # type: ignore[no-any-return]
        raw = head + blake2s(head, key=self.key, digest_size=_MAC).digest()
        if flags & CHECKS:
            raw += blake2s(raw + binding, key=self.bind_key, digest_size=_BIND_MAC).digest()
        # base64.urlsafe_b64encode's steps without its three Python frames
        return b2a_base64(raw, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")

    def check(self, nonce: str, now: float,
              binding: Callable[[int], bytes] | None = None) -> NonceCheck:
        """Whether ``nonce`` is ours and still good at ``now``; ``binding(checks)`` gives the
        parts of this request the nonce's auth_checks mask names (called only when set)."""
        opened = nonce_open(nonce, self.key) if nonce_open is not None else None
        if opened is None:  # (not the usual unbound shape, or no C)
            opened = self.open(nonce, binding)
        if not opened:  # (False from C, None from open: not ours)
            return _INVALID
        flags, issued, expires, nid, bound = opened
        if not bound or now > expires or issued > now + self.max_drift:
            return _new_tuple(NonceCheck, (_STALE, nid, expires, flags))
        return _new_tuple(NonceCheck, (_OK, nid, expires, flags))

    def open(self, nonce: str, binding: Callable[[int], bytes] | None = None
             ) -> tuple[int, int, int, bytes, bool] | None:
        """(flags, issued, expires, id, whether the binding matches) of a nonce of ours, None
        for any other text (kemi_core.sip's nonce_open reads the unbound shape so, with False
        for not ours)."""
        raw = _decode(nonce)
        if raw is None or len(raw) < _PLAIN:
            return None
        version, flags, issued, expires, nid = _HEAD.unpack_from(raw)
        want = blake2s(raw[:_HEAD_SIZE], key=self.key, digest_size=_MAC).digest()
        if version != _VERSION or not compare_digest(raw[_HEAD_SIZE:_PLAIN], want):
            return None
        if len(raw) != (_PLAIN + _BIND_MAC if flags & CHECKS else _PLAIN):
            return None
        bound = True
        if flags & CHECKS:
            parts = binding(flags & CHECKS) if binding is not None else b""
            bind = blake2s(raw[:_PLAIN] + parts, key=self.bind_key, digest_size=_BIND_MAC).digest()
            bound = compare_digest(raw[_PLAIN:], bind)
        return flags, issued, expires, nid, bound


#: Random nonce ids drawn ahead from os.urandom, 512 a time (one getrandom call each: ~2 us);
#: a forked child drops the parent's, so no two processes hand out the same ones.
IDS: list[bytes] = []
_ID_BATCH = 512
os.register_at_fork(after_in_child=IDS.clear)


def more_ids() -> bytes:
    chunks = [iter(os.urandom(8 * _ID_BATCH))] * 8  # (zip of one iterator 8 times: 8 bytes a step)
    IDS.extend(map(bytes, zip(*chunks, strict=False)))
    return IDS.pop()


#: base64url <-> base64 (what base64.urlsafe_b64decode/-encode translate)
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PADDING = ("", "===", "==", "=")
_HEAD_SIZE = _HEAD.size
_OK, _STALE = NonceStatus.OK, NonceStatus.STALE
_INVALID = NonceCheck(NonceStatus.INVALID)
#: a NonceCheck from a 4-tuple without the named tuple's Python __new__ frame
_new_tuple = tuple.__new__


def _decode(nonce: str) -> bytes | None:
    """base64.urlsafe_b64decode's steps (ASCII only, not strict) in one frame."""
    if len(nonce) > MAX_TEXT:
        return None
    try:
        return a2b_base64((nonce + _PADDING[len(nonce) % 4]).encode("ascii").translate(_FROM_URLSAFE))
    except (binascii.Error, ValueError):
        return None
