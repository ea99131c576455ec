"""``verify_depth``: how many CA certificates above the peer's own a verification may go
through, set on an ``ssl.SSLContext`` with OpenSSL's ``SSL_CTX_set_verify_depth``.

Python's ``ssl`` has no setter for it, so the call is made through ``ctypes`` on the libssl
the interpreter's ``_ssl`` module uses, with the ``SSL_CTX`` pointer read from the context
object. That pointer's place is checked before any write: OpenSSL's own
``SSL_CTX_get_options`` must report the options the context reports, else nothing is written
and ``set_verify_depth`` returns False (the caller says so).

OpenSSL's meaning, which Kamailio passes on: depth N lets the chain hold N certificates between
the peer's and the trust anchor (0: the peer's certificate is issued by a trusted CA itself).
"""

from __future__ import annotations

import ctypes
import functools
import ssl
import sys


@functools.cache
def _libssl() -> ctypes.CDLL | None:
    """The libssl already loaded in this process (the one ``_ssl`` links), None if not found."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            paths = {line.split()[-1] for line in fh if "/libssl.so" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_set_verify_depth.restype = None
        lib.SSL_CTX_set_verify_depth.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.SSL_CTX_get_verify_depth.restype = ctypes.c_int
        lib.SSL_CTX_get_verify_depth.argtypes = [ctypes.c_void_p]
        return lib
    return None


def _ssl_ctx(ctx: ssl.SSLContext) -> int | None:
    """The ``SSL_CTX *`` of ``ctx``: CPython's context object holds it right after its
    object header (reference count and type)."""
    if sys.implementation.name != "cpython":
        return None
    header = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
    return ctypes.c_void_p.from_address(id(ctx) + header).value


def _checked(ctx: ssl.SSLContext) -> tuple[ctypes.CDLL, int] | None:
    lib = _libssl()
    ptr = _ssl_ctx(ctx)
    if lib is None or not ptr:
        return None
    if lib.SSL_CTX_get_options(ptr) != int(ctx.options):
        return None  # not the layout expected: write nothing
    return lib, ptr


def set_verify_depth(ctx: ssl.SSLContext, depth: int) -> bool:
    """Set ``ctx``'s verify depth; False when it cannot be done here."""
    found = _checked(ctx)
    if found is None:
        return False
    lib, ptr = found
    lib.SSL_CTX_set_verify_depth(ptr, int(depth))
    return True


def verify_depth(ctx: ssl.SSLContext) -> int | None:
    """``ctx``'s verify depth (-1: OpenSSL's own limit), None when it cannot be read."""
    found = _checked(ctx)
    if found is None:
        return None
    lib, ptr = found
    return int(lib.SSL_CTX_get_verify_depth(ptr))
