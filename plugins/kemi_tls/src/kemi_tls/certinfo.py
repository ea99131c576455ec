"""Fields of an X.509 certificate as Kamailio's ``$tls_*`` variables show them."""

from __future__ import annotations

import datetime
import functools
import ssl
import urllib.parse

from cryptography import x509
from cryptography.x509.oid import NameOID

#: $tls_peer_subject_<field> / $tls_my_issuer_<field> ... -> the attribute's OID
NAME_FIELDS = {
    "cn": NameOID.COMMON_NAME,
    "locality": NameOID.LOCALITY_NAME,
    "country": NameOID.COUNTRY_NAME,
    "state": NameOID.STATE_OR_PROVINCE_NAME,
    "organization": NameOID.ORGANIZATION_NAME,
    "unit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "uid": NameOID.USER_ID,
}

#: OpenSSL's short names, for the one-line form of a name (``/O=kemi/CN=host``)
_SHORT = {
    NameOID.COMMON_NAME: "CN", NameOID.COUNTRY_NAME: "C", NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST", NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU", NameOID.USER_ID: "UID",
    NameOID.EMAIL_ADDRESS: "emailAddress", NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.SERIAL_NUMBER: "serialNumber",
}


@functools.lru_cache(maxsize=256)
def load_der(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(der)


@functools.lru_cache(maxsize=64)
def load_pem_file(path: str, mtime: float) -> x509.Certificate | None:
    """The first certificate of a PEM file (``mtime`` keys the cache to the file's version)."""
    try:
        with open(path, "rb") as fh:
            return x509.load_pem_x509_certificate(fh.read())
    except (OSError, ValueError):
        return None


def oneline(name: x509.Name) -> str:
    """``/O=kemi tests/CN=kemi.test``, OpenSSL's X509_NAME_oneline form."""
    return "".join(f"/{_SHORT.get(a.oid, a.oid.dotted_string)}={a.value!s}" for a in name)


def name_field(name: x509.Name, field: str) -> str | None:
    attrs = name.get_attributes_for_oid(NAME_FIELDS[field])
    return str(attrs[0].value) if attrs else None


def asn1_time(when: datetime.datetime) -> str:
    """``Jan  2 03:04:05 2026 GMT`` (OpenSSL's ASN1_TIME_print)."""
    return when.strftime("%b ") + f"{when.day:2d}" + when.strftime(" %H:%M:%S %Y GMT")


def san_values(cert: x509.Certificate, kind: str) -> str | None:
    """The first subjectAltName of a kind: email, hostname, uri or ip."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    values: list[object]
    if kind == "email":
        values = list(ext.get_values_for_type(x509.RFC822Name))
    elif kind == "hostname":
        values = list(ext.get_values_for_type(x509.DNSName))
    elif kind == "uri":
        values = list(ext.get_values_for_type(x509.UniformResourceIdentifier))
    else:
        values = list(ext.get_values_for_type(x509.IPAddress))
    return str(values[0]) if values else None


def pem(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM).decode("ascii")


def urlencoded(cert: x509.Certificate) -> str:
    return urllib.parse.quote(pem(cert), safe="")


def expired(cert: x509.Certificate, now: datetime.datetime) -> bool:
    return not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc)


def self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer


def cipher_description(ctx: ssl.SSLContext, name: str) -> str:
    """OpenSSL's SSL_CIPHER_description line of cipher ``name`` (tls.list, $tls_description)."""
    for info in _ciphers(id(ctx), ctx):
        if info.get("name") == name:
            return str(info.get("description", name)).rstrip()
    return name


_cipher_cache: dict[int, list[dict[str, object]]] = {}


def _ciphers(key: int, ctx: ssl.SSLContext) -> list[dict[str, object]]:
    found = _cipher_cache.get(key)
    if found is None:
        found = _cipher_cache[key] = list(ctx.get_ciphers())  # type: ignore[arg-type]
    return found
