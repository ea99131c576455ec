"""auth.so: Digest authentication (RFC 7616, RFC 2617), Kamailio's auth module.

Challenges (``auth_challenge``, ``www_challenge``, ``proxy_challenge``) carry a nonce signed
with the ``secret`` modparam (random by default, made once in the main process, so every worker
shares it), expiring after ``nonce_expire`` seconds. Credentials are checked by auth_db (the
subscriber table) or by the ``pv_*`` functions here (a password or HA1 from the script), with
Kamailio's return codes: 1 ok, -1 error, -2 wrong password, -3 unknown user, -4 stale nonce,
-5 no credentials for the realm, -6 nonce reused, -8 user mismatch.

Beyond Kamailio: credentials longer than any client sends get ``400 Bad Request`` (and no
challenge after it); a stale nonce answered with the right password gets ``stale=true`` in the
next challenge (RFC 7616 3.3), whatever the flags; replay state (``nonce_count``,
``one_time_nonce``) lives in the shared store, so it holds across workers.
"""

from __future__ import annotations

import logging
from typing import Any

from kemi_auth import digest
from kemi_auth.credentials import Credentials, realm_of
from kemi_auth.nonce import NonceCodec
from kemi_auth.pvs import register_pvs
from kemi_auth.replay import TABLE, ReplayGuard
from kemi_auth.settings import MODULE, PARAMS, AuthSettings
from kemi_auth.verify import PROXY, STATE, WWW, AuthApi, AuthResult, identity
from kemi_core.api import (
    CfgFunction,
    Core,
    KemiExport,
    MsgContext,
    export,
    hookimpl,
    set_pv,
    shared_store,
)

log = logging.getLogger("kemi.auth")

__all__ = ["PROXY", "WWW", "AuthApi", "AuthResult", "Credentials", "check_identity", "expand"]


class _State:
    api: AuthApi | None = None


_state = _State()


def api() -> AuthApi:
    if _state.api is None:
        raise RuntimeError("auth: used before mod_init")
    return _state.api


def expand(ctx: MsgContext, text: str) -> str:
    """A string parameter with pseudo-variables in it, as Kamailio's cfg functions take them."""
    return ctx.core.pv.format(text)(ctx) if "$" in text else text


# ---- exports ----------------------------------------------------------------------------
def exports() -> list[KemiExport]:
    return [
        export(MODULE, "auth_challenge", auth_challenge, "si"),
        export(MODULE, "www_challenge", www_challenge, "si"),
        export(MODULE, "proxy_challenge", proxy_challenge, "si"),
        export(MODULE, "consume_credentials", consume_credentials, ""),
        export(MODULE, "has_credentials", has_credentials, "s"),
        export(MODULE, "pv_auth_check", pv_auth_check, "ssii"),
        export(MODULE, "pv_www_authenticate", pv_www_authenticate, "ssi"),
        export(MODULE, "pv_proxy_authenticate", pv_proxy_authenticate, "ssi"),
        export(MODULE, "auth_get_www_authenticate", auth_get_www_authenticate, "sis"),
    ]


_CFG: tuple[tuple[str, Any, int, int, tuple[int, ...]], ...] = (
    ("auth_challenge", lambda ctx, r, f: auth_challenge(ctx, expand(ctx, r), f), 2, 2, (1,)),
    ("www_challenge", lambda ctx, r, f: www_challenge(ctx, expand(ctx, r), f), 2, 2, (1,)),
    ("proxy_challenge", lambda ctx, r, f: proxy_challenge(ctx, expand(ctx, r), f), 2, 2, (1,)),
    ("consume_credentials", lambda ctx: consume_credentials(ctx), 0, 0, ()),
    ("has_credentials", lambda ctx, r: has_credentials(ctx, expand(ctx, r)), 1, 1, ()),
    ("pv_auth_check", lambda ctx, r, p, f, c: pv_auth_check(
        ctx, expand(ctx, r), expand(ctx, p), f, c), 4, 4, (2, 3)),
    ("pv_www_authenticate", lambda ctx, r, p, f, m="": _pv_authenticate(
        ctx, expand(ctx, r), expand(ctx, p), f, False, expand(ctx, m)), 3, 4, (2,)),
    ("pv_www_authorize", lambda ctx, r, p, f: _pv_authenticate(
        ctx, expand(ctx, r), expand(ctx, p), f, False), 3, 3, (2,)),
    ("pv_proxy_authenticate", lambda ctx, r, p, f: _pv_authenticate(
        ctx, expand(ctx, r), expand(ctx, p), f, True), 3, 3, (2,)),
    ("pv_proxy_authorize", lambda ctx, r, p, f: _pv_authenticate(
        ctx, expand(ctx, r), expand(ctx, p), f, True), 3, 3, (2,)),
    ("auth_get_www_authenticate", lambda ctx, r, f, d: auth_get_www_authenticate(
        ctx, expand(ctx, r), f, d), 3, 3, (1,)),
)


@hookimpl
def mod_register(core: Core) -> None:
    for name, kind, default, doc in PARAMS:
        core.declare_param(MODULE, name, kind, default, doc=doc)
    for name, func, lo, hi, ints in _CFG:
        core.add_cfg_function(CfgFunction(MODULE, name, func, lo, hi, ints))
    register_pvs(core)


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    settings = AuthSettings.from_core(core)
    codec = NonceCodec(settings.secret, settings.nonce_expire, settings.max_drift)
    guard = ReplayGuard(shared_store(core).table(TABLE))
    _state.api = AuthApi(settings, codec, guard, _Replier(core, settings))
    core.provide(MODULE, _state.api)


class _Replier:
    """Sends auth's replies through sl (statefully when tm holds the transaction, unless
    force_stateless_reply), with its headers after the script's append_to_reply ones."""

    def __init__(self, core: Core, settings: AuthSettings) -> None:
        self.core = core
        self.name = "sl_send_reply" if settings.force_stateless_reply else "send_reply"
        self.send: Any = None  # sl's function, found at the first reply (modules are loaded)

    def __call__(self, ctx: MsgContext, code: int, reason: str,
                 headers: list[tuple[str, str]]) -> bool:
        send = self.send
        if send is None:
            sl = self.core.registry.lookup("sl", self.name)
            if sl is None:
                log.error("auth: the sl module is not loaded: no %d sent", code)
                return False
            send = self.send = sl.func
        # (sl's send_reply / sl_send_reply take a module's headers after the script's queued
        # ones, which stay queued: SlApi)
        return int(send(ctx, code, reason, headers)) > 0


# ---- challenges -------------------------------------------------------------------------
def auth_challenge(ctx: MsgContext, realm: str, flags: int) -> int:
    """Challenge the request: 401 with WWW-Authenticate for a REGISTER, else 407 with
    Proxy-Authenticate. flags: 1 qop=auth, 2 qop=auth-int, 4 no automatic 500 on failure,
    16 stale=true."""
    auth = _state.api  # (api() in place: every unauthenticated request is challenged)
    if auth is None:
        raise RuntimeError("auth: used before mod_init")
    return auth.challenge(ctx, realm, flags, ctx.msg.method != "REGISTER")


def www_challenge(ctx: MsgContext, realm: str, flags: int) -> int:
    """Send 401 Unauthorized with a WWW-Authenticate challenge (flags as auth_challenge)."""
    return api().challenge(ctx, realm, flags, False)


def proxy_challenge(ctx: MsgContext, realm: str, flags: int) -> int:
    """Send 407 Proxy Authentication Required with a Proxy-Authenticate challenge (flags as
    auth_challenge)."""
    return api().challenge(ctx, realm, flags, True)


def auth_get_www_authenticate(ctx: MsgContext, realm: str, flags: int, pvdest: str) -> int:
    """Build a WWW-Authenticate header (``WWW-Authenticate: Digest ...``, no line end) for
    ``realm`` and store it in the pseudo-variable named by ``pvdest``."""
    value = api().challenge_value(ctx, realm, flags)
    try:
        set_pv(ctx, pvdest, f"WWW-Authenticate: {value}")
    except ValueError as exc:
        log.error("auth_get_www_authenticate: cannot set %s: %s", pvdest, exc)
        return -1
    return 1


# ---- credentials ------------------------------------------------------------------------
def consume_credentials(ctx: MsgContext) -> int:
    """Remove the credentials header that was verified, so it is not sent downstream; -1 when
    none was verified."""
    return api().consume(ctx)


def has_credentials(ctx: MsgContext, realm: str) -> int:
    """1 when the request has an Authorization or Proxy-Authorization header for ``realm``."""
    realm = api().strip_realm(realm)
    for hf in (WWW, PROXY):
        for value in ctx.msg.headers(hf):
            if realm_of(value) == realm:
                return 1
    return -1


def _pv_authenticate(ctx: MsgContext, realm: str, password: str, flags: int, proxy: bool,
                     method: str = "") -> int:
    """Verify credentials against ``password`` (an HA1 when flags has 1)."""
    def lookup(cred: Credentials, algorithm: str) -> str | int:
        if flags & 1:
            return password
        return digest.ha1(algorithm, cred.username, cred.realm, password)

    if not realm:
        return AuthResult.ERROR
    return api().authenticate(ctx, realm, PROXY if proxy else WWW, lookup, method)


def pv_www_authenticate(ctx: MsgContext, realm: str, password: str, flags: int) -> int:
    """Verify Authorization credentials for ``realm`` against ``password`` (flags 1: it is
    the HA1). Returns Kamailio's auth codes (1 ok, -2 wrong password, -4 stale ...)."""
    return _pv_authenticate(ctx, realm, password, flags, False)


def pv_proxy_authenticate(ctx: MsgContext, realm: str, password: str, flags: int) -> int:
    """Verify Proxy-Authorization credentials for ``realm`` against ``password`` (flags 1:
    it is the HA1)."""
    return _pv_authenticate(ctx, realm, password, flags, True)


def pv_auth_check(ctx: MsgContext, realm: str, password: str, flags: int, checks: int) -> int:
    """pv_www_authenticate for a REGISTER, pv_proxy_authenticate otherwise; with ``checks``
    1 the authentication user must also be the From (and for REGISTER the To) user: -8."""
    rc = _pv_authenticate(ctx, realm, password, flags, ctx.msg.method != "REGISTER")
    if rc == AuthResult.OK and checks & 1:
        return check_identity(ctx, realm, checks, api().settings.use_domain)
    return rc


def check_identity(ctx: MsgContext, realm: str, flags: int, use_domain: bool) -> int:
    """auth_check's identity rule (kemi_auth.verify.identity) for the credentials verified
    in this request: -1 when none were."""
    st = ctx.mod_state.get(STATE)
    if st is None or st.authorized is None:
        return AuthResult.ERROR
    return identity(ctx.msg, st.authorized[1].username, flags,
                    api().strip_realm(realm).lower() if use_domain else None)

