"""The Digest computations of RFC 7616 3.4.1-3.4.3 (RFC 2617 for MD5), sans-IO.

HA1 = H(username ":" realm ":" password); HA2 = H(method ":" uri) (qop=auth-int adds
":" H(body)); response = H(HA1 ":" nonce [":" nc ":" cnonce ":" qop] ":" HA2).
Responses are compared in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

HashFunction = Callable[[bytes], "hashlib._Hash"]

#: Algorithm names (as written in challenges, upper-cased) -> hash function.
ALGORITHMS: dict[str, HashFunction] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
    "SHA-512-256": lambda data: hashlib.new("sha512_256", data),
    "SHA-512": hashlib.sha512,  # Kamailio's name for its SHA-512 option
}


def canonical_algorithm(name: str) -> str | None:
    """The ALGORITHMS key for a name as a client writes it ("" means MD5), None if unknown."""
    key = name.strip().upper() if name else "MD5"
    return key if key in ALGORITHMS else None


def hexdigest(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode("utf-8", "surrogateescape")).hexdigest()


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    return hexdigest(algorithm, f"{username}:{realm}:{password}")


def ha2(algorithm: str, method: str, uri: str, qop: str = "", body: bytes = b"") -> str:
    if qop.lower() == "auth-int":
        body_hash = ALGORITHMS[algorithm](body).hexdigest()
        return hexdigest(algorithm, f"{method}:{uri}:{body_hash}")
    return hexdigest(algorithm, f"{method}:{uri}")


def response(algorithm: str, ha1_hex: str, nonce: str, ha2_hex: str, qop: str = "",
             nc: str = "", cnonce: str = "") -> str:
    if qop:
        return hexdigest(algorithm, f"{ha1_hex}:{nonce}:{nc}:{cnonce}:{qop}:{ha2_hex}")
    return hexdigest(algorithm, f"{ha1_hex}:{nonce}:{ha2_hex}")


def response_matches(algorithm: str, ha1_hex: str, method: str, uri: str, nonce: str,
                     qop: str, nc: str, cnonce: str, body: bytes, received: str) -> bool:
    """Whether ``received`` is the response for these credentials (ha2, response and same in
    one frame: every authenticated request goes through here)."""
    h = ALGORITHMS[algorithm]
    if qop and qop.lower() == "auth-int":
        ha2_hex = ha2(algorithm, method, uri, qop, body)
    else:
        ha2_hex = h(f"{method}:{uri}".encode("utf-8", "surrogateescape")).hexdigest()
    text = (f"{ha1_hex}:{nonce}:{nc}:{cnonce}:{qop}:{ha2_hex}" if qop
            else f"{ha1_hex}:{nonce}:{ha2_hex}")
    want = h(text.encode("utf-8", "surrogateescape")).hexdigest()
    if received.isascii():  # compare_digest takes ASCII str as they are
        return hmac.compare_digest(want, received.lower())
    return same(want, received)


def same(expected: str, received: str) -> bool:
    """Constant-time comparison of two hex digests (case-insensitive, as RFC 7616 allows)."""
    return hmac.compare_digest(expected.lower().encode("ascii", "replace"),
                               received.lower().encode("ascii", "replace"))
