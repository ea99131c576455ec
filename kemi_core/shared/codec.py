"""How entries are laid out in the store: keys as bytes, values as an expiry stamp + pickle.

A value is ``8 bytes`` (big-endian IEEE double: absolute expiry in wall-clock seconds, 0 for
never) followed by the pickled Python value. Reads check the stamp, so an expired entry is
absent for every process at once, whether the sweeper has removed it yet or not.

The expiry index (one LMDB database for the whole store) has a key per expiring entry:
``stamp + table name + NUL + key``; big-endian doubles of positive numbers sort as the numbers
do, so the sweeper reads the index from its start and stops at the first future stamp.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

_STAMP = struct.Struct(">d")
STAMP_SIZE = _STAMP.size
NEVER = 0.0

#: LMDB's key limit is 511 bytes; an index key adds the stamp, the table name and a NUL.
MAX_TABLE_NAME = 64
MAX_KEY = 400


class KeyTooLong(ValueError):
    """A key longer than :data:`MAX_KEY` bytes (UTF-8), or empty."""


def key_bytes(key: str | bytes) -> bytes:
    data = key.encode("utf-8", "surrogateescape") if isinstance(key, str) else bytes(key)
    if not data or len(data) > MAX_KEY:
        raise KeyTooLong(f"a shared-store key must be 1..{MAX_KEY} bytes, not {len(data)}")
    return data


def key_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def encode(value: Any, expires_at: float) -> bytes:
    return _STAMP.pack(expires_at) + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


#: The stamp of an entry that never expires (encode_never's prefix).
NEVER_PREFIX = _STAMP.pack(NEVER)


def encode_never(value: Any) -> bytes:
    """encode(value, NEVER), for the writes of entries that never expire (usrloc's)."""
    return NEVER_PREFIX + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def expiry_of(buf: bytes | memoryview) -> float:
    return float(_STAMP.unpack_from(buf)[0])


def decode(buf: bytes | memoryview) -> Any:
    return pickle.loads(buf[STAMP_SIZE:])


def live(buf: bytes | memoryview, now: float) -> bool:
    """Whether an encoded entry has not expired at ``now``."""
    stamp = _STAMP.unpack_from(buf)[0]
    return stamp == NEVER or stamp > now


def index_key(expires_at: float, table: bytes, key: bytes) -> bytes:
    return _STAMP.pack(expires_at) + table + b"\0" + key


def split_index_key(data: bytes) -> tuple[float, bytes, bytes]:
    """``(stamp, table name, key)`` of an expiry-index key."""
    stamp = float(_STAMP.unpack_from(data)[0])
    table, _, key = data[STAMP_SIZE:].partition(b"\0")
    return stamp, table, key
