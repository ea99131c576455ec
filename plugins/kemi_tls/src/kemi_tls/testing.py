"""A throwaway certificate authority for tests and benchmarks: a CA, server and client
certificates signed by it, written as PEM files (what tls.cfg names). Made fresh per run with
the ``cryptography`` package; nothing is fetched or kept.

    pki = make_pki(tmp_path)            # pki.ca, pki.server_cert, pki.server_key, ...
    ctx = pki.client_context()          # an ssl.SSLContext trusting the CA
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import warnings
from typing import Literal

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec", "rsa"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _key(kind: KeyType) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, org: str = "kemi tests") -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: str, data: bytes) -> str:
    with open(path, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)
    return path


def _pem_key(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@attrs.frozen
class Pki:
    """Paths of the PEM files one ``make_pki`` call wrote."""

    directory: str
    ca: str
    ca_key: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca: str  # a CA that signed nothing here: trusting only it fails verification

    def client_context(self, verify: bool = True, with_cert: bool = False,
                       minimum: ssl.TLSVersion | None = None,
                       maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        """An SSL client context as a test client uses it (names are not checked: the
        server is reached by IP, as Kamailio's clients do)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        if verify:
            ctx.load_verify_locations(self.ca)
        else:
            ctx.verify_mode = ssl.CERT_NONE
        if with_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: tests offer them anyway
            warnings.simplefilter("ignore", DeprecationWarning)
            if minimum is not None:
                ctx.minimum_version = minimum
            if maximum is not None:
                ctx.maximum_version = maximum
        if minimum is not None and minimum < ssl.TLSVersion.TLSv1_2:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let an old version be offered at all
        return ctx


def issue(ca_cert: x509.Certificate, ca_key: PrivateKey, cn: str, kind: KeyType,
          server: bool, days: int = 30, ips: tuple[str, ...] = ("127.0.0.1",),
          dns: tuple[str, ...] = ("localhost",)) -> tuple[x509.Certificate, PrivateKey]:
    """A leaf certificate for ``cn`` signed by the CA."""
    key = _key(kind)
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def _ca(cn: str, kind: KeyType, path_length: int | None = 1,
        issuer: tuple[x509.Certificate, PrivateKey] | None = None,
        ) -> tuple[x509.Certificate, PrivateKey]:
    """A CA certificate: self-signed, or signed by ``issuer`` (an intermediate)."""
    key = _key(kind)
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, signer = (_name(cn), key) if issuer is None else (issuer[0].subject, issuer[1])
    cert = (x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(issuer_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=60))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(signer, hashes.SHA256()))
    return cert, key


def make_pki(directory: str | os.PathLike[str], kind: KeyType = "ec",
             server_cn: str = "kemi.test", client_cn: str = "alice.kemi.test") -> Pki:
    """A CA, a server and a client certificate (and an unrelated CA) in ``directory``."""
    d = os.fspath(directory)
    os.makedirs(d, exist_ok=True)
    ca_cert, ca_key = _ca("kemi test CA", kind)
    other_cert, _ = _ca("kemi unrelated CA", kind)
    srv_cert, srv_key = issue(ca_cert, ca_key, server_cn, kind, server=True)
    cli_cert, cli_key = issue(ca_cert, ca_key, client_cn, kind, server=False)
    pem = serialization.Encoding.PEM
    return Pki(
        directory=d,
        ca=_write(os.path.join(d, "ca.pem"), ca_cert.public_bytes(pem)),
        ca_key=_write(os.path.join(d, "ca-key.pem"), _pem_key(ca_key)),
        server_cert=_write(os.path.join(d, "server.pem"), srv_cert.public_bytes(pem)),
        server_key=_write(os.path.join(d, "server-key.pem"), _pem_key(srv_key)),
        client_cert=_write(os.path.join(d, "client.pem"), cli_cert.public_bytes(pem)),
        client_key=_write(os.path.join(d, "client-key.pem"), _pem_key(cli_key)),
        other_ca=_write(os.path.join(d, "other-ca.pem"), other_cert.public_bytes(pem)),
    )


def reissue_server(pki: Pki, cn: str, kind: KeyType = "ec") -> tuple[str, str]:
    """A new server certificate and key with common name ``cn`` from the same CA, written
    over the old files (what tls.reload should pick up)."""
    with open(pki.ca, "rb") as fh:
        ca_cert = x509.load_pem_x509_certificate(fh.read())
    with open(pki.ca_key, "rb") as fh:
        ca_key = serialization.load_pem_private_key(fh.read(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    cert, key = issue(ca_cert, ca_key, cn, kind, server=True)
    # the key first: a reader between the two writes finds a pair that does not match and
    # keeps its old contexts rather than a mix
    _write(pki.server_key + ".new", _pem_key(key))
    _write(pki.server_cert + ".new", cert.public_bytes(serialization.Encoding.PEM))
    os.replace(pki.server_key + ".new", pki.server_key)
    os.replace(pki.server_cert + ".new", pki.server_cert)
    return pki.server_cert, pki.server_key


@attrs.frozen
class Chain:
    """A root CA and leaf certificates issued through ``intermediates`` CAs below it."""

    root: str  # the trust anchor (what ca_list names)
    server_chain: str  # a server leaf, then the intermediates, lowest first
    server_key: str
    client_chain: str  # a client leaf, then the intermediates
    client_key: str
    intermediates: int


def make_chain(directory: str | os.PathLike[str], intermediates: int, kind: KeyType = "ec",
               ) -> Chain:
    """Root -> ``intermediates`` CAs -> a server and a client leaf (for verify_depth)."""
    d = os.fspath(directory)
    os.makedirs(d, exist_ok=True)
    pem = serialization.Encoding.PEM
    root = _ca("kemi chain root", kind, path_length=None)
    chain = [root]
    for n in range(intermediates):
        chain.append(_ca(f"kemi chain intermediate {n + 1}", kind, None, issuer=chain[-1]))
    above = b"".join(c.public_bytes(pem) for c, _ in reversed(chain[1:]))
    out = {}
    for role in ("server", "client"):
        cert, key = issue(chain[-1][0], chain[-1][1], f"{role}.chain.kemi.test", kind,
                          server=role == "server")
        out[role] = (_write(os.path.join(d, f"{role}-chain.pem"), cert.public_bytes(pem) + above),
                     _write(os.path.join(d, f"{role}-chain-key.pem"), _pem_key(key)))
    return Chain(_write(os.path.join(d, "chain-root.pem"), root[0].public_bytes(pem)),
                 *out["server"], *out["client"], intermediates)


#: what ``options_status`` answers when the handshake (or the connection) fails
REFUSED = "refused"


def options_status(port: int, cert: tuple[str, str] | None = None, tls12: bool = False) -> str:
    """The status line a server on 127.0.0.1:``port`` answers to an OPTIONS over TLS, the
    client presenting ``cert`` (chain, key) when given and offering at most TLS 1.2 when
    ``tls12``; ``REFUSED`` when the handshake fails. The server's certificate is not checked:
    the tests using this look at what the server accepts."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(*cert)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw) as sock:
            sock.sendall(b"OPTIONS sip:u@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS c.invalid;branch="
                         b"z9hG4bKprobe\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:u@x>\r\n"
                         b"Call-ID: probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
            data = sock.recv(65535)
    except (ssl.SSLError, ConnectionError):
        return REFUSED
    return data.split(b"\r\n")[0].decode() if data else REFUSED
