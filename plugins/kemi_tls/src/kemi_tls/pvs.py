"""The ``$tls_*`` pseudo-variables: the TLS connection a message arrived on, its peer's
certificate and ours. Outside TLS (or on a connection already gone) they are ``$null``."""

from __future__ import annotations

import datetime
import os
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptography import x509

from kemi_core.api import Core, MsgContext, PvValue, StreamConnection, connection_of
from kemi_tls import certinfo
from kemi_tls.noca import peer_verified

if TYPE_CHECKING:
    from kemi_tls.service import TlsModule


def tls_conn(ctx: MsgContext) -> StreamConnection | None:
    """The connection of ``ctx`` when it is TLS (wss included) with a session up."""
    if ctx.rcv.proto not in ("tls", "wss"):
        return None
    conn = connection_of(ctx)
    if conn is None or conn.tls is None or not conn.tls.established:
        return None
    return conn


def _peer_cert(ctx: MsgContext) -> x509.Certificate | None:
    conn = tls_conn(ctx)
    der = conn.tls.peer_der() if conn is not None and conn.tls is not None else None
    return certinfo.load_der(der) if der else None


def _peer_verified(ctx: MsgContext) -> PvValue:
    conn = tls_conn(ctx)
    if conn is None or conn.tls is None:
        return None
    try:
        return 1 if peer_verified(conn.tls.obj) else 0
    except (ValueError, ssl.SSLError):
        return 0


def _name_reader(part: str, field: str) -> Callable[[x509.Certificate], PvValue]:
    def read(cert: x509.Certificate) -> PvValue:
        return certinfo.name_field(cert.subject if part == "subject" else cert.issuer, field)
    return read


def _san_reader(kind: str) -> Callable[[x509.Certificate], PvValue]:
    return lambda cert: certinfo.san_values(cert, kind)


def register_pvs(core: Core, module: TlsModule) -> None:
    def my_cert(ctx: MsgContext) -> x509.Certificate | None:
        conn = tls_conn(ctx)
        if conn is None or conn.tls is None:
            return None
        path = module.certificate_of(conn)
        if not path:
            return None
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return None
        return certinfo.load_pem_file(path, mtime)

    def session(read: Callable[[StreamConnection], PvValue]) -> Callable[[MsgContext], PvValue]:
        def get(ctx: MsgContext) -> PvValue:
            conn = tls_conn(ctx)
            return read(conn) if conn is not None else None
        return get

    def cert_pv(which: Callable[[MsgContext], x509.Certificate | None],
                read: Callable[[x509.Certificate], PvValue]) -> Callable[[MsgContext], PvValue]:
        def get(ctx: MsgContext) -> PvValue:
            cert = which(ctx)
            return read(cert) if cert is not None else None
        return get

    def cipher(conn: StreamConnection) -> tuple[str, str, int] | None:
        return conn.tls.cipher if conn.tls is not None else None

    reg = core.pv.register
    reg("tls_version", session(lambda c: c.tls.version if c.tls else None),
        doc="TLS protocol version of the connection (TLSv1.3 ...)")
    reg("tls_my_version", session(lambda c: c.tls.version if c.tls else None),
        doc="TLS protocol version of the connection (as $tls_version)")
    reg("tls_peer_version", session(lambda c: c.tls.version if c.tls else None),
        doc="TLS protocol version of the connection (as $tls_version)")
    reg("tls_cipher_info", session(lambda c: (cipher(c) or (None,))[0]),
        doc="cipher of the connection")
    reg("tls_cipher_bits", session(lambda c: (cipher(c) or (None, None, None))[2]),
        doc="secret bits of the connection's cipher")
    reg("tls_description", session(lambda c: module.describe_cipher(c)),
        doc="OpenSSL's description of the connection's cipher")
    reg("tls_peer_server_name", session(lambda c: c.tls.server_name or None if c.tls else None),
        doc="server name (SNI) the client asked for")
    reg("tls_peer_verified", _peer_verified,
        doc="1 when the peer presented a certificate whose chain verified, else 0")
    now = lambda: datetime.datetime.now(datetime.UTC)  # noqa: E731
    for who, which in (("peer", _peer_cert), ("my", my_cert)):
        reg(f"tls_{who}_subject", cert_pv(which, lambda c: certinfo.oneline(c.subject)),
            doc=f"subject of the {who} certificate (/O=.../CN=...)")
        reg(f"tls_{who}_issuer", cert_pv(which, lambda c: certinfo.oneline(c.issuer)),
            doc=f"issuer of the {who} certificate")
        reg(f"tls_{who}_serial", cert_pv(which, lambda c: c.serial_number),
            doc=f"serial number of the {who} certificate")
        reg(f"tls_{who}_raw_cert", cert_pv(which, certinfo.pem),
            doc=f"the {who} certificate in PEM")
        reg(f"tls_{who}_urlencoded_cert", cert_pv(which, certinfo.urlencoded),
            doc=f"the {who} certificate in PEM, URL-encoded")
        reg(f"tls_{who}_notBefore", cert_pv(which, lambda c: certinfo.asn1_time(
            c.not_valid_before_utc)), doc=f"start of the {who} certificate's validity")
        reg(f"tls_{who}_notAfter", cert_pv(which, lambda c: certinfo.asn1_time(
            c.not_valid_after_utc)), doc=f"end of the {who} certificate's validity")
        reg(f"tls_{who}_expired", cert_pv(which, lambda c: int(certinfo.expired(c, now()))),
            doc=f"1 when the {who} certificate is outside its validity")
        reg(f"tls_{who}_selfsigned", cert_pv(which, lambda c: int(certinfo.self_signed(c))),
            doc=f"1 when the {who} certificate is self-signed")
        for part in ("subject", "issuer"):
            for field in certinfo.NAME_FIELDS:
                reg(f"tls_{who}_{part}_{field}", cert_pv(which, _name_reader(part, field)),
                    doc=f"{field} of the {who} certificate's {part}")
        for kind in ("email", "hostname", "uri", "ip"):
            reg(f"tls_{who}_san_{kind}", cert_pv(which, _san_reader(kind)),
                doc=f"first subjectAltName {kind} of the {who} certificate")
    reg("tls_peer_revoked", cert_pv(_peer_cert, lambda c: 0),
        doc="0: a revoked certificate never gets through the handshake (crl)")
