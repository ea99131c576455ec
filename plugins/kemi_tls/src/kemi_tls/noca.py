"""``verify_client = optional_no_ca``: ask the client for a certificate, verify it when one
comes, and let the connection up whatever the outcome (``$tls_peer_verified`` tells which), as
Kamailio 5.6 does for phones with self-signed or expired certificates.

Python's ``ssl`` cannot do it (it has no verify callback): the context gets ``CERT_OPTIONAL``
as usual, then OpenSSL's ``SSL_CTX_set_verify`` is called through ``ctypes`` with a callback
that lets every certificate through; whether the certificate verified is read afterwards with
``SSL_get_verify_result`` on the connection. Pointers are found as ``depth`` finds the context's
and checked before use (nothing is written or read through a pointer that fails the check).
"""

from __future__ import annotations

import ctypes
import functools
import ssl
import sys

from kemi_tls.depth import _checked, _libssl, _ssl_ctx

SSL_VERIFY_PEER = 0x01
X509_V_OK = 0

_VerifyCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


@_VerifyCallback
def _let_through(preverify_ok: int, store: int) -> int:
    """OpenSSL's verify callback: every certificate passes (its verdict is kept on the
    connection all the same)."""
    return 1


@functools.cache
def _functions() -> ctypes.CDLL | None:
    lib = _libssl()
    if lib is None:
        return None
    lib.SSL_CTX_set_verify.restype = None
    lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VerifyCallback]
    lib.SSL_get_SSL_CTX.restype = ctypes.c_void_p
    lib.SSL_get_SSL_CTX.argtypes = [ctypes.c_void_p]
    lib.SSL_get_verify_result.restype = ctypes.c_long
    lib.SSL_get_verify_result.argtypes = [ctypes.c_void_p]
    return lib


def accept_unverified(ctx: ssl.SSLContext) -> bool:
    """Make ``ctx`` (a server context) ask for a client certificate and accept any; False when
    it cannot be done here (the context is left as it was)."""
    lib = _functions()
    if lib is None or _checked(ctx) is None:
        return False
    ctx.verify_mode = ssl.CERT_OPTIONAL  # Python's own setter first: it resets the callback
    lib.SSL_CTX_set_verify(_ssl_ctx(ctx), SSL_VERIFY_PEER, _let_through)
    ctx.kemi_no_ca = True  # type: ignore[attr-defined]
    return True


def accepts_unverified(ctx: ssl.SSLContext) -> bool:
    """Whether ``accept_unverified`` was applied to ``ctx``."""
    return bool(getattr(ctx, "kemi_no_ca", False))


def _ssl_of(obj: ssl.SSLObject) -> int | None:
    """The ``SSL *`` of an SSLObject: CPython's _ssl socket object holds it after its object
    header and one pointer (a weak reference to the socket); checked against the context."""
    inner = getattr(obj, "_sslobj", None)
    if inner is None or sys.implementation.name != "cpython":
        return None
    header = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
    ptr = ctypes.c_void_p.from_address(id(inner) + header + ctypes.sizeof(ctypes.c_void_p)).value
    lib = _functions()
    if not ptr or lib is None or lib.SSL_get_SSL_CTX(ptr) != _ssl_ctx(obj.context):
        return None
    return ptr


def chain_verified(obj: ssl.SSLObject) -> bool:
    """Whether the peer's certificate verified on a connection whose context accepts any."""
    ptr = _ssl_of(obj)
    lib = _functions()
    if ptr is None or lib is None:
        return False
    return int(lib.SSL_get_verify_result(ptr)) == X509_V_OK


def peer_verified(obj: ssl.SSLObject) -> bool:
    """Whether the peer presented a certificate whose chain verified ($tls_peer_verified)."""
    if not obj.getpeercert(binary_form=True):
        return False
    if accepts_unverified(obj.context):  # the handshake let any certificate through
        return chain_verified(obj)
    return bool(obj.getpeercert())  # empty unless verified (CERT_OPTIONAL/REQUIRED)
