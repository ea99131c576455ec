"""Checking a request's Digest credentials: what auth_db and the pv_* functions share.

:meth:`AuthApi.authenticate` finds the credentials for a realm, checks the nonce, asks the
caller for the user's HA1 (auth_db reads it from the subscriber table), compares the response
in constant time and applies the replay rules. Return codes are Kamailio's (``AuthResult``).
Other modules get it with ``core.require("auth", AuthApi)``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from kemi_auth import digest
from kemi_auth.credentials import (
    Credentials,
    MalformedCredentials,
    NotDigest,
    OverlongCredentials,
    parse_credentials,
)
from kemi_auth.nonce import IDS, NC, OTN, NonceCheck, NonceCodec, NonceStatus, more_ids
from kemi_auth.replay import ReplayGuard
from kemi_auth.settings import AuthSettings
from kemi_core.sip import (
    SipParseError,
    digest_challenge,
    digest_open,
    digest_response,
    header_key,
)

if TYPE_CHECKING:
    from kemi_core.api import MsgContext
    from kemi_core.sip import SipMsg

log = logging.getLogger("kemi.auth")

WWW = "Authorization"
PROXY = "Proxy-Authorization"
STATE = "auth"
#: the header keys (kemi_core.sip's header_key) of the credentials headers
_KEYS = {WWW: header_key(WWW), PROXY: header_key(PROXY)}


class AuthResult:
    """Kamailio's auth return codes (auth_check, www_authenticate, pv_auth_check ...). Plain
    ints, not an IntEnum: a KEMI engine hands an int result to the script as it is, an
    IntEnum member through normalize_result (a call per authentication)."""

    OK = 1
    ERROR = -1
    INVALID_PASSWORD = -2
    USER_UNKNOWN = -3
    STALE_NONCE = -4
    NO_CREDENTIALS = -5
    NONCE_REUSED = -6
    USER_MISMATCH = -8


@attrs.define(slots=True)
class AuthState:
    """What the auth functions learned about one request (``ctx.mod_state["auth"]``)."""

    #: (header name, credentials) that were verified: consume_credentials removes them
    authorized: tuple[str, Credentials] | None = None
    #: the nonce was stale but the digest right: the next challenge says stale=true
    stale: bool = False
    #: a 400 went out for overlong credentials: no challenge follows it
    replied: bool = False


def state(ctx: MsgContext) -> AuthState:
    st = ctx.mod_state.get(STATE)
    if st is None:
        st = ctx.mod_state[STATE] = AuthState()
    return st  # type: ignore[no-any-return]


#: Algorithm names as clients usually spell them -> the ALGORITHMS key (others: canonical_algorithm)
_ALGORITHMS = {"": "MD5", "MD5": "MD5", "SHA-256": "SHA-256", "SHA-512-256": "SHA-512-256"}

#: ``lookup(credentials, algorithm)`` -> the user's HA1 (hex) or an AuthResult code.
HA1Lookup = Callable[[Credentials, str], "str | int"]


class AuthApi:
    def __init__(self, settings: AuthSettings, codec: NonceCodec, guard: ReplayGuard,
                 reply: Callable[[MsgContext, int, str, list[tuple[str, str]]], bool]) -> None:
        self.settings = settings
        self.codec = codec
        self.guard = guard
        self.reply = reply
        #: whether nonces are bound to parts of the request (any auth_checks_* set)
        self.binds = bool(settings.checks_register or settings.checks_no_dlg
                          or settings.checks_in_dlg)
        otn = OTN if settings.one_time_nonce else 0
        #: a nonce's replay flags by whether its challenge offers qop
        self.replay_flags = (otn, otn | (NC if settings.nonce_count else 0))
        #: digest_open's conf (with the algorithm's hash function last) when it is built
        self.fast: tuple[bytes, int, str, type[Credentials], digest.HashFunction] | None = (
            (codec.key, codec.max_drift, settings.algorithm, Credentials,
             digest.ALGORITHMS[settings.algorithm]) if digest_open is not None else None)
        #: with digest_challenge built, no realm_prefix and unbound nonces: the ends of the
        #: usual challenge value by its qop bits (flags & 3), + 4 when it says stale=true
        self.tails: tuple[str, ...] | None = None
        if digest_challenge is not None and not self.binds and not settings.realm_prefix:
            algorithm = f", algorithm={settings.algorithm}" if settings.algorithm_param else ""
            self.tails = tuple(("" if i < 4 else ", stale=true") + _QOP[i & 3] + algorithm
                               for i in range(8))

    # ---- credentials ---------------------------------------------------------------------
    def strip_realm(self, realm: str) -> str:
        prefix = self.settings.realm_prefix
        if prefix and realm.startswith(prefix) and len(realm) > len(prefix):
            return realm[len(prefix):]
        return realm

    def find(self, ctx: MsgContext, hf: str, realm: str) -> Credentials | None:
        """The first ``hf`` credentials for ``realm``; raises Overlong/MalformedCredentials."""
        msg = ctx.msg
        names = msg.header_keys
        key = _KEYS.get(hf) or header_key(hf)
        count = names.count(key)  # (none, or the usual one, found without msg.headers)
        if count == 0:
            return None
        found = None
        for value in (msg.value_at(names.index(key)),) if count == 1 else msg.headers(hf):
            try:  # every one is read: an overlong one is refused
                cred = parse_credentials(value)
            except NotDigest:
                continue
            if found is None and cred.realm == realm:
                found = cred
        return found

    def refuse_overlong(self, ctx: MsgContext, why: str) -> int:
        log.warning("auth: 400 to %s:%d: %s", ctx.rcv.src_ip, ctx.rcv.src_port, why)
        st = state(ctx)
        if not st.replied:
            self.reply(ctx, 400, "Bad Request", [])
            st.replied = True
        return AuthResult.ERROR

    # ---- authentication ------------------------------------------------------------------
    def authenticate(self, ctx: MsgContext, realm: str, hf: str, lookup: HA1Lookup,
                     method: str = "", checks: int = 0, use_domain: bool = False) -> int:
        """Verify the ``hf`` credentials for ``realm`` with the HA1 ``lookup`` gives; with
        ``checks`` 1, verified credentials must also pass auth_check's identity rule
        (:func:`identity` with auth_check's flags, the domains the realm with
        ``use_domain``)."""
        if self.settings.realm_prefix:
            realm = self.strip_realm(realm)
        fast = self.fast
        if fast is not None:  # the usual shape in two compiled calls (digest_open's docs)
            msg = ctx.msg
            names = msg.header_keys
            key = _KEYS.get(hf) or header_key(hf)
            count = names.count(key)
            if count == 0:
                return AuthResult.NO_CREDENTIALS
            if count == 1:
                cred = digest_open(msg.value_at(names.index(key)), realm, time.time(), fast)
                if cred is not None:  # (else the Python path below decides)
                    ha1 = lookup(cred, fast[2])
                    if isinstance(ha1, int):
                        return ha1  # (the nonce is good: no stale to report)
                    if not digest_response(cred, ha1, method or msg.method, fast[4]):
                        return AuthResult.INVALID_PASSWORD
                    self.authorized(ctx, hf, cred, fast[2], ha1)
                    if checks & 1:
                        return identity(msg, cred.username, checks,
                                        realm.lower() if use_domain else None)
                    return AuthResult.OK
        rc = self.authenticate_py(ctx, realm, hf, lookup, method)
        if rc == AuthResult.OK and checks & 1:
            return identity(ctx.msg, state(ctx).authorized[1].username,  # type: ignore[index]
                            checks, realm.lower() if use_domain else None)
        return rc

    def authenticate_py(self, ctx: MsgContext, realm: str, hf: str, lookup: HA1Lookup,
                        method: str = "") -> int:
        """authenticate in Python (``realm`` without its prefix): every shape, the reference
        the compiled path is tested against."""
        try:
            cred = self.find(ctx, hf, realm)
        except OverlongCredentials as exc:
            return self.refuse_overlong(ctx, str(exc))
        except MalformedCredentials as exc:
            log.info("auth: unusable credentials from %s: %s", ctx.rcv.src_ip, exc)
            return AuthResult.ERROR
        if cred is None:
            return AuthResult.NO_CREDENTIALS
        algorithm = _ALGORITHMS.get(cred.algorithm) or digest.canonical_algorithm(cred.algorithm)
        if algorithm != self.settings.algorithm:
            log.info("auth: algorithm %r not offered (%s expected)", cred.algorithm,
                     self.settings.algorithm)
            return AuthResult.ERROR
        if cred.qop and (not cred.cnonce or not _is_nc(cred.nc)):
            return AuthResult.ERROR
        check = self.codec.check(cred.nonce, time.time(), lambda checks: binding(ctx, checks))
        if check.status is NonceStatus.INVALID:
            log.info("auth: a nonce that is not ours from %s", ctx.rcv.src_ip)
            return AuthResult.ERROR
        if check.status is NonceStatus.OK and check.flags & (NC | OTN):
            replay = self.replay(cred, check)
            if replay is not None:
                return replay
        ha1 = lookup(cred, algorithm)
        if isinstance(ha1, int):
            return AuthResult.STALE_NONCE if check.status is NonceStatus.STALE else ha1
        msg = ctx.msg
        good = digest.response_matches(algorithm, ha1, method or msg.method, cred.uri,
                                       cred.nonce, cred.qop, cred.nc, cred.cnonce, msg.body,
                                       cred.response)
        if check.status is NonceStatus.STALE:
            state(ctx).stale = good  # RFC 7616 3.3: stale=true only for a right digest
            return AuthResult.STALE_NONCE
        if not good:
            return AuthResult.INVALID_PASSWORD
        return self.authorized(ctx, hf, cred, algorithm, ha1)

    def authorized(self, ctx: MsgContext, hf: str, cred: Credentials, algorithm: str,
                   ha1: str) -> int:
        """Record verified credentials (for consume_credentials and auth_check's identity
        rule) and add Authentication-Info when asked: OK."""
        st = ctx.mod_state.get(STATE)  # state(ctx) in place: every authorised request
        if st is None:
            ctx.mod_state[STATE] = AuthState((hf, cred))
        else:
            st.authorized = (hf, cred)
        if self.settings.add_authinfo_hdr:
            self.add_authinfo(ctx, cred, algorithm, ha1)
        return AuthResult.OK

    def replay(self, cred: Credentials, check: NonceCheck) -> int | None:
        """The replay rules the nonce was issued under (see kemi_auth.replay): None when the
        response may be checked, else its code (-4 for an nc already seen, -6 for a one-time
        nonce used before)."""
        if cred.nc and check.flags & NC:
            if self.guard.count_up(check.nid, int(cred.nc, 16), check.expires):
                return None
            return AuthResult.STALE_NONCE
        if check.flags & OTN and not self.guard.first_use(check.nid, check.expires):
            return AuthResult.NONCE_REUSED
        return None

    def add_authinfo(self, ctx: MsgContext, cred: Credentials, algorithm: str, ha1: str) -> None:
        """Authentication-Info for the 200 (RFC 7616 3.5): the next nonce and, with qop,
        rspauth proving the server knows the password too."""
        nextnonce = (self.new_nonce(ctx, bool(cred.qop)) if self.settings.one_time_nonce
                     else cred.nonce)
        parts = [f'nextnonce="{nextnonce}"']
        if cred.qop:
            h2 = digest.ha2(algorithm, "", cred.uri, cred.qop, b"")
            rspauth = digest.response(algorithm, ha1, cred.nonce, h2, cred.qop, cred.nc,
                                      cred.cnonce)
            parts += [f"qop={cred.qop}", f'rspauth="{rspauth}"', f'cnonce="{cred.cnonce}"',
                      f"nc={cred.nc}"]
        ctx.extra.setdefault("reply_headers", []).append(("Authentication-Info", ", ".join(parts)))

    # ---- challenges ----------------------------------------------------------------------
    def new_nonce(self, ctx: MsgContext, qop: bool = False) -> str:
        """A nonce for this request; ``qop``: the challenge offers qop (nonce_count applies)."""
        if not self.binds:  # the default
            return self.codec.make(time.time(), self.replay_flags[qop])
        checks = self.settings.checks_for(ctx.msg)
        return self.codec.make(time.time(), checks | self.replay_flags[qop], binding(ctx, checks))

    def challenge_value(self, ctx: MsgContext, realm: str, flags: int) -> str:
        """A Digest challenge (the WWW-/Proxy-Authenticate value). flags: 1 qop=auth,
        2 qop=auth-int, 16 stale=true (also set when this request's nonce was stale)."""
        if self.settings.realm_prefix:
            realm = self.strip_realm(realm)
        if '"' in realm or "\\" in realm:
            realm = _quote(realm)
        value = f'Digest realm="{realm}", nonce="{self.new_nonce(ctx, bool(flags & 3))}"'
        if flags & 16 or ((st := ctx.mod_state.get(STATE)) is not None and st.stale):
            value += ", stale=true"  # (RFC 7616 3.3: this request's nonce was stale)
        if flags & 3:
            value += _QOP[flags & 3]
        if self.settings.algorithm_param:
            value += f", algorithm={self.settings.algorithm}"
        return value

    def challenge(self, ctx: MsgContext, realm: str, flags: int, proxy: bool) -> int:
        """Send 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) with a fresh nonce."""
        st = ctx.mod_state.get(STATE)
        if st is not None and st.replied:
            return 1  # the request already got its 400: a challenge would be a second reply
        msg = ctx.msg
        if not msg.is_request or msg.method == "ACK":
            return AuthResult.ERROR
        if not realm:
            try:
                uri = (msg.from_ if proxy else msg.to).uri
            except SipParseError:  # no readable From/To: no realm to offer
                uri = None
            realm = uri.host if uri is not None else ""
        if not realm:
            log.error("auth: no realm for the challenge")
            if not flags & 4:
                self.reply(ctx, 500, "Internal Server Error", [])
            return AuthResult.ERROR
        value = None
        if self.tails is not None:  # the usual: the value and its nonce in one compiled call
            qop = flags & 3
            value = digest_challenge(
                realm, self.codec.key, self.replay_flags[qop != 0], time.time(),
                self.codec.expire, IDS.pop() if IDS else more_ids(),
                self.tails[qop | 4 if flags & 16 or (st is not None and st.stale) else qop])
        if value is None:  # (any other shape: a realm to quote, a bound nonce ...)
            value = self.challenge_value(ctx, realm, flags)
        if proxy:
            ok = self.reply(ctx, 407, "Proxy Authentication Required", [("Proxy-Authenticate", value)])
        else:
            ok = self.reply(ctx, 401, "Unauthorized", [("WWW-Authenticate", value)])
        return 1 if ok else AuthResult.ERROR

    def consume(self, ctx: MsgContext) -> int:
        """Remove the credentials that were verified from the request (consume_credentials)."""
        st = ctx.mod_state.get(STATE)  # (state(ctx) would make one only to find it empty)
        if st is None or st.authorized is None:
            return AuthResult.ERROR
        hf, cred = st.authorized
        msg = ctx.msg
        if msg.header_keys.count(_KEYS.get(hf) or header_key(hf)) == 1:
            msg.remove_header(hf)  # the usual: the one verified, alone
            return 1
        values = msg.headers(hf)
        msg.remove_header(hf)
        if len(values) != 1 or values[0] != cred.raw:
            for value in values:
                if value != cred.raw:
                    msg.append_header(hf, value)
        return 1


def identity(msg: SipMsg, username: str, flags: int, domain: str | None) -> int:
    """auth_check's identity rule: the verified ``username``'s user part must be the From user
    (REGISTER: From and To; PUBLISH: From, To and R-URI), and with ``domain`` (use_domain:
    the realm, lower-cased) their domains that. Flags bit 2 skips it for requests that may be
    anonymous (INVITE, BYE, PRACK, UPDATE, MESSAGE)."""
    method = msg.method
    if flags & 2 and method in _MAY_BE_ANONYMOUS:
        return AuthResult.OK
    try:
        uris = ((msg.from_.uri, msg.to.uri) if method == "REGISTER"
                else (msg.from_.uri,) if method != "PUBLISH"
                else (msg.from_.uri, msg.to.uri, msg.uri))
    except SipParseError:  # an unreadable identity header cannot match
        return AuthResult.USER_MISMATCH
    user = username.partition("@")[0]
    for uri in uris:
        if uri is None or (uri.user or "") != user:
            return AuthResult.USER_MISMATCH
        if domain is not None and uri.host.lower() != domain:
            return AuthResult.USER_MISMATCH
    return AuthResult.OK


_MAY_BE_ANONYMOUS = frozenset(("INVITE", "BYE", "PRACK", "UPDATE", "MESSAGE"))


def binding(ctx: MsgContext, checks: int) -> bytes:
    """The parts of the request a nonce is bound to (Kamailio's auth_checks_* bits)."""
    if not checks:
        return b""
    msg = ctx.msg
    parts = []
    try:
        if checks & 1:
            parts.append(msg.ruri)
        if checks & 2:
            parts.append(msg.call_id)
        if checks & 4:
            parts.append(msg.from_.tag or "")
        if checks & 8:
            parts.append(ctx.rcv.src_ip)
    except SipParseError:  # unreadable headers bind to nothing that can match
        parts.append("\x00unreadable")
    return "\x00".join(parts).encode("utf-8", "surrogateescape")


_NC = re.compile(r"[0-9a-fA-F]{8}")


def _is_nc(nc: str) -> bool:
    """Eight hex digits (one regex call: cheaper than a generator over the characters)."""
    return _NC.fullmatch(nc) is not None


#: the qop of a challenge by its flags' bits 1 (auth) and 2 (auth-int)
_QOP = ("", ', qop="auth"', ', qop="auth-int"', ', qop="auth,auth-int"')


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
