"""TLS profiles -> Python ``ssl`` contexts, and which one a connection uses.

Server side: the ``[server:IP:PORT]`` profile of the listen socket, else ``[server:default]``;
when the client sends SNI, a profile with a matching ``server_name`` on that socket (or an
``any`` one) takes over before the certificate is sent. Client side: the profile whose
``server_id`` the script asked for (``tls_set_connect_server_id``), else ``[client:IP:PORT]``
of the next hop, else ``[client:default]``.

Kamailio's meanings kept: ``verify_certificate``/``require_certificate`` (or ``verify_client``)
decide whether a client certificate is asked for and must verify; ``verify_depth`` bounds the
chain (``depth``); the peer's name is never checked against its certificate (only its chain);
``tls_method`` bounds the protocol versions; without ``cipher_list`` OpenSSL's defaults apply.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from kemi_core.api import ConfigError
from kemi_tls.depth import set_verify_depth
from kemi_tls.noca import accept_unverified
from kemi_tls.profiles import METHODS, Profile, ProfileSet, sni_matches

log = logging.getLogger("kemi.tls")

#: The attributes that name files.
FILE_ATTRS = ("certificate", "private_key", "ca_list", "ca_path", "crl")


def _version(name: str | None) -> ssl.TLSVersion | None:
    return getattr(ssl.TLSVersion, name) if name else None


def _where(prof: Profile) -> tuple[str | None, int | None]:
    return (prof.file, prof.line) if prof.line else (None, None)


def _server_verify(prof: Profile) -> ssl.VerifyMode:
    mode = prof.get("verify_client")
    if isinstance(mode, str) and mode:
        return {"on": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL}.get(
            mode.lower(), ssl.CERT_NONE)
    if not prof.get("verify_certificate"):
        return ssl.CERT_NONE
    return ssl.CERT_REQUIRED if prof.get("require_certificate") else ssl.CERT_OPTIONAL


def build_context(prof: Profile) -> ssl.SSLContext:
    """The SSLContext of one completed profile; ConfigError (at the profile's place) when a
    file is missing or unusable."""
    server = prof.role == "server"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    file, line = _where(prof)
    method = str(prof.get("tls_method") or "TLSv1")
    low, high = METHODS[method.lower()]
    cipher_list = str(prof.get("cipher_list") or "")
    try:
        # OpenSSL's defaults as Kamailio gets them (Python narrows its own further)
        ctx.set_ciphers(cipher_list or "DEFAULT")
    except ssl.SSLError:
        raise ConfigError(f"[{prof.name}]: no cipher matches cipher_list {cipher_list!r}",
                          file, line) from None
    ctx.minimum_version = _version(low) or ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = _version(high) or ssl.TLSVersion.MAXIMUM_SUPPORTED
    ctx.options |= ssl.OP_NO_COMPRESSION
    if not prof.get("renegotiation"):
        ctx.options |= ssl.OP_NO_RENEGOTIATION
    cert = str(prof.get("certificate") or "")
    key = str(prof.get("private_key") or "") or cert
    if cert:
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"[{prof.name}]: cannot load certificate {cert} with private key "
                              f"{key}: {_why(exc)}", file, line) from None
    elif server:
        raise ConfigError(f"[{prof.name}]: a server profile needs a certificate (modparam "
                          "\"certificate\" or certificate = ... in tls.cfg)", file, line)
    ca_list = str(prof.get("ca_list") or "")
    ca_path = str(prof.get("ca_path") or "")
    if ca_list or ca_path:
        try:
            ctx.load_verify_locations(cafile=ca_list or None, capath=ca_path or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"[{prof.name}]: cannot load ca_list {ca_list or ca_path}: "
                              f"{_why(exc)}", file, line) from None
    crl = str(prof.get("crl") or "")
    if crl:
        try:
            ctx.load_verify_locations(cafile=crl)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"[{prof.name}]: cannot load crl {crl}: {_why(exc)}", file,
                              line) from None
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    if server:
        ctx.verify_mode = _server_verify(prof)
        if str(prof.get("verify_client") or "").lower() == "optional_no_ca" and \
                not accept_unverified(ctx):
            log.warning("tls: [%s]: verify_client optional_no_ca cannot be set with this "
                        "Python/OpenSSL: no client certificate is asked for", prof.name)
    else:
        ctx.check_hostname = False  # Kamailio checks the chain, never the name
        ctx.verify_mode = ssl.CERT_REQUIRED if prof.get("verify_certificate") else ssl.CERT_NONE
    depth = prof.get("verify_depth")
    if isinstance(depth, int) and not set_verify_depth(ctx, depth):
        log.warning("tls: [%s]: verify_depth %d cannot be set with this Python/OpenSSL: "
                    "OpenSSL's own limit applies", prof.name, depth)
    return ctx


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc).lower().replace("_", " ")
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


class Contexts:
    """Every profile's SSLContext, built once (at start and at each tls.reload)."""

    def __init__(self, profiles: ProfileSet, servers: bool = True) -> None:
        """``servers``: build the server profiles too (there is a TLS listen socket)."""
        self.profiles = profiles
        self._ctx: dict[int, ssl.SSLContext] = {}
        #: id(context) -> its profile (which certificate a connection presents)
        self.profile_of: dict[int, Profile] = {}
        for prof in profiles.client + (profiles.server if servers else []):
            ctx = self._ctx[id(prof)] = build_context(prof)
            self.profile_of[id(ctx)] = prof
        if servers:
            for prof in profiles.server:
                self._ctx[id(prof)].sni_callback = self._sni_callback(prof)

    def context(self, prof: Profile) -> ssl.SSLContext:
        ctx = self._ctx.get(id(prof))
        if ctx is None:
            raise ValueError(f"TLS profile [{prof.name}] is not in use")
        return ctx

    # ---- server side ---------------------------------------------------------------------------
    def server_profile(self, local: tuple[str, int]) -> Profile:
        ip, port = local[0].strip("[]"), local[1]
        for prof in self.profiles.server:
            d = prof.domain
            if d.kind == "addr" and d.ip == ip and d.port == port and not prof.get("server_name"):
                return prof
        for prof in self.profiles.server:
            d = prof.domain
            if d.kind == "addr" and d.ip == ip and d.port == port:
                return prof
        return self.profiles.server_default()

    def server_context(self, local: tuple[str, int]) -> ssl.SSLContext:
        return self.context(self.server_profile(local))

    def _sni_callback(self, base: Profile) -> Callable[[ssl.SSLObject, str | None,
                                                        ssl.SSLContext], None]:
        """Switch to the profile whose server_name matches the client's SNI (the certificate
        and key change; the protocol bounds and verification stay the listen socket's)."""
        def pick(obj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
            if not name:
                return
            obj.kemi_sni = name  # type: ignore[attr-defined]  # $tls_peer_server_name
            for prof in self._sni_candidates(base):
                mode = prof.get("server_name_mode") or 0
                if sni_matches(str(prof.get("server_name")), int(mode), name):  # type: ignore[call-overload]
                    if prof is not base:
                        obj.context = self.context(prof)
                    return
        return pick

    def _sni_candidates(self, base: Profile) -> list[Profile]:
        same = [p for p in self.profiles.server if p.get("server_name") and (
            p.domain == base.domain or p.domain.kind in ("any", "default"))]
        return same

    # ---- client side ---------------------------------------------------------------------------
    def client_profile(self, remote: tuple[str, int], server_id: str | None = None,
                       server_name: str | None = None) -> Profile:
        if server_id:
            for prof in self.profiles.client:
                if prof.get("server_id") == server_id:
                    return prof
        ip, port = remote[0].strip("[]"), remote[1]
        matches = [p for p in self.profiles.client
                   if p.domain.kind == "addr" and p.domain.ip == ip and p.domain.port == port]
        if server_name:
            for prof in matches + [p for p in self.profiles.client if p.domain.kind == "any"]:
                if prof.get("server_name") == server_name:
                    return prof
        if matches:
            return matches[0]
        return self.profiles.client_default()

    def client_context(self, remote: tuple[str, int], server_id: str | None = None,
                       server_name: str | None = None) -> tuple[ssl.SSLContext, str | None]:
        prof = self.client_profile(remote, server_id, server_name)
        sni = server_name or str(prof.get("server_name") or "") or None
        return self.context(prof), sni
