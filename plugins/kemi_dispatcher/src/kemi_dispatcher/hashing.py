"""The hash the dispatcher's hashing algorithms use, and what each algorithm hashes.

The function was identified by experiment against Kamailio 5.6 (its ``dispatcher.hash`` RPC and
the destinations it picks for known Call-IDs and URIs), so that a kemi dispatcher and a Kamailio
dispatcher in front of the same set send the same call to the same destination: the bytes are
read in big-endian 32-bit words (the last one short), each word ``v`` adds ``v ^ (v >> 3)`` to a
32-bit sum, and the sum is folded once at the end. Several values (a URI's user and host) are
hashed as one stream of words, each value starting a new word.
"""

from __future__ import annotations

_MASK = 0xFFFFFFFF


def _accumulate(h: int, data: bytes) -> int:
    n = len(data) - len(data) % 4
    for i in range(0, n, 4):
        v = int.from_bytes(data[i:i + 4], "big")
        h += v ^ (v >> 3)
    v = int.from_bytes(data[n:], "big") if n < len(data) else 0
    return (h + (v ^ (v >> 3))) & _MASK


def ds_hash(*values: str) -> int:
    """The 32-bit hash of ``values`` (Kamailio's ``dispatcher.hash`` hashid)."""
    h = 0
    for value in values:
        h = _accumulate(h, value.encode())
    return (h + (h >> 11) + (h >> 13) + (h >> 23)) & _MASK


def uri_key(uri: str, user_only: bool = False) -> tuple[str, ...]:
    """What a URI-based algorithm hashes: user and ``host[:port]`` (the port only when it is not
    the scheme's default), or the user alone with the module's flag 1."""
    scheme, _, rest = uri.partition(":")
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    user, at, hostport = rest.rpartition("@")
    if not at:
        user, hostport = "", rest
    user = user.split(":", 1)[0]  # no password
    if user_only:
        return (user,)
    host, _, port = hostport.rpartition(":") if not hostport.endswith("]") else (hostport, "", "")
    if not host:
        host, port = hostport, ""
    default = "5061" if scheme.lower() == "sips" else "5060"
    return (user, hostport if port and port != default else host)
