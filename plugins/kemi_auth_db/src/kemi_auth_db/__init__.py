"""auth_db.so: Digest authentication against the ``subscriber`` table (Kamailio's auth_db).

Needs the auth module (nonces, challenges, the response check) and a database module for
``db_url``. ``auth_check(realm, table, flags)`` verifies the Authorization (REGISTER) or
Proxy-Authorization (other requests) credentials with Kamailio's return codes: 1 ok, -1 error,
-2 wrong password, -3 unknown user, -4 stale nonce, -5 no credentials for the realm, -6 nonce
reused, -8 the authenticated user is not the From/To user (flags 1).
"""

from __future__ import annotations

import logging
from typing import Any

from kemi_auth import PROXY, WWW, AuthApi, AuthResult, check_identity, expand
from kemi_auth.verify import HA1Lookup
from kemi_auth_db.subscriber import MODULE, Subscribers, SubscriberSettings
from kemi_core.api import (
    CfgFunction,
    Core,
    KemiExport,
    ModuleError,
    MsgContext,
    export,
    hookimpl,
    open_db,
    parse_uri,
)
from kemi_core.sip import SipParseError

log = logging.getLogger("kemi.auth_db")

_PARAMS: tuple[tuple[str, type, Any, str], ...] = (
    ("db_url", str, "mysql://kamailio:kamailiorw@localhost/kamailio", "database of the "
     "subscriber table"),
    ("user_column", str, "username", "column of the user names"),
    ("domain_column", str, "domain", "column of the domains"),
    ("password_column", str, "ha1", "column of the passwords (calculate_ha1=1) or HA1s"),
    ("password_column_2", str, "ha1b", "column of the HA1s over user@domain"),
    ("calculate_ha1", int, 0, "1: the password column holds plain passwords"),
    ("use_domain", int, 0, "1: the domain is part of the lookup and of auth_check's checks"),
    ("load_credentials", str, "", "columns loaded into AVPs on success: "
     "'$avp(name)=column;column2'"),
    ("version_table", int, 1, "0: do not check the table's version row"),
    ("force_generate_avps", int, 0, "1: load the AVPs even when authentication fails"),
)


class _State:
    core: Core | None = None
    subscribers: Subscribers | None = None
    #: auth's API and the core it was found in (looked up once, not for every request)
    auth: AuthApi | None = None
    auth_core: Core | None = None
    #: without load_credentials, once auth is bound: (that core, auth, the lookups without
    #: a row kept by table, use_domain), what auth_check's usual path needs
    usual: tuple[Core, AuthApi, dict[str, HA1Lookup], bool] | None = None


_state = _State()


def _subs() -> Subscribers:
    if _state.subscribers is None:
        raise ModuleError("auth_db: used before mod_init")
    return _state.subscribers


def exports() -> list[KemiExport]:
    return [
        export(MODULE, "auth_check", auth_check, "ssi"),
        export(MODULE, "www_authenticate", www_authenticate, "ss"),
        export(MODULE, "www_authenticate_method", www_authenticate_method, "sss"),
        export(MODULE, "proxy_authenticate", proxy_authenticate, "ss"),
        export(MODULE, "is_subscriber", is_subscriber, "ssi"),
    ]


_CFG: tuple[tuple[str, Any, int, int, tuple[int, ...]], ...] = (
    ("auth_check", lambda ctx, r, t, f: auth_check(ctx, expand(ctx, r), expand(ctx, t), f),
     3, 3, (2,)),
    ("www_authenticate", lambda ctx, r, t, m="": _authenticate(
        ctx, expand(ctx, r), expand(ctx, t), WWW, expand(ctx, m)), 2, 3, ()),
    ("www_authorize", lambda ctx, r, t: _authenticate(
        ctx, expand(ctx, r), expand(ctx, t), WWW), 2, 2, ()),
    ("proxy_authenticate", lambda ctx, r, t: _authenticate(
        ctx, expand(ctx, r), expand(ctx, t), PROXY), 2, 2, ()),
    ("proxy_authorize", lambda ctx, r, t: _authenticate(
        ctx, expand(ctx, r), expand(ctx, t), PROXY), 2, 2, ()),
    ("is_subscriber", lambda ctx, u, t, f: is_subscriber(ctx, expand(ctx, u), expand(ctx, t), f),
     3, 3, (2,)),
)


@hookimpl
def mod_register(core: Core) -> None:
    for name, kind, default, doc in _PARAMS:
        core.declare_param(MODULE, name, kind, default, doc=doc)
    for name, func, lo, hi, ints in _CFG:
        core.add_cfg_function(CfgFunction(MODULE, name, func, lo, hi, ints))


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    if "auth" not in core.loaded_modules:
        raise ModuleError("auth_db needs the auth module: loadmodule \"auth.so\" before it")
    settings = SubscriberSettings.from_core(core)
    db = open_db(core, core.modparam(MODULE, "db_url"), user=MODULE)
    _state.core = core
    _state.subscribers = Subscribers(db, settings)
    _state.auth = _state.auth_core = _state.usual = None


# ---- functions ----------------------------------------------------------------------------
def _authenticate(ctx: MsgContext, realm: str, table: str, hf: str, method: str = "") -> int:
    subs = _state.subscribers  # (_subs() inlined)
    if subs is None:
        raise ModuleError("auth_db: used before mod_init")
    if not realm:  # Kamailio: an empty realm means the From (Proxy) / To (WWW) domain
        try:
            uri = (ctx.msg.from_ if hf == PROXY else ctx.msg.to).uri
        except SipParseError:  # no readable header: no realm
            uri = None
        realm = uri.host if uri is not None else ""
        if not realm:
            return AuthResult.ERROR
    core = ctx.core
    auth = _state.auth
    if auth is None or _state.auth_core is not core:
        auth = _bind_auth(core)
    if not subs.s.credentials:  # the usual case: no row kept, one lookup per table
        lookup = subs.plain_lookups.get(table) or subs.plain_lookup(table)
        return auth.authenticate(ctx, realm, hf, lookup, method)
    found: list[dict[str, Any]] = []
    rc = auth.authenticate(ctx, realm, hf, subs.ha1_lookup(table, found), method)
    if found and (rc == AuthResult.OK or subs.s.force_generate_avps):
        subs.load_avps(ctx, found[0])
    return rc


def _bind_auth(core: Core) -> AuthApi:
    auth = _state.auth = core.require("auth", AuthApi)
    _state.auth_core = core
    subs = _subs()
    _state.usual = (None if subs.s.credentials
                    else (core, auth, subs.plain_lookups, subs.s.use_domain))
    return auth


def www_authenticate(ctx: MsgContext, realm: str, table: str) -> int:
    """Verify the Authorization credentials for ``realm`` against ``table`` (usually
    "subscriber"); the script answers a failure with www_challenge. Codes as auth_check."""
    return _authenticate(ctx, realm, table, WWW)


def www_authenticate_method(ctx: MsgContext, realm: str, table: str, method: str) -> int:
    """www_authenticate computing the digest with ``method`` instead of the request's."""
    return _authenticate(ctx, realm, table, WWW, method)


def proxy_authenticate(ctx: MsgContext, realm: str, table: str) -> int:
    """Verify the Proxy-Authorization credentials for ``realm`` against ``table``; the script
    answers a failure with proxy_challenge. Codes as auth_check."""
    return _authenticate(ctx, realm, table, PROXY)


def auth_check(ctx: MsgContext, realm: str, table: str, flags: int) -> int:
    """www_authenticate for a REGISTER, proxy_authenticate for other requests. flags 1: the
    authenticated user must be the From user (REGISTER: From and To; PUBLISH: From, To and
    R-URI), else -8; flags 2 with 1 skips that for INVITE, BYE, PRACK, UPDATE and MESSAGE.
    Returns 1 ok, -1 error, -2 wrong password, -3 unknown user, -4 stale nonce, -5 no
    credentials, -6 nonce reused, -8 user mismatch."""
    hf = WWW if ctx.msg.method == "REGISTER" else PROXY
    usual = _state.usual
    if usual is not None and usual[0] is ctx.core and realm:  # _authenticate's path in one call
        return usual[1].authenticate(ctx, realm, hf, usual[2].get(table) or _subs().plain_lookup(
            table), "", flags, usual[3])
    rc = _authenticate(ctx, realm, table, hf)
    if rc == 1 and flags & 1:  # (AuthResult.OK)
        return check_identity(ctx, realm, flags, _subs().s.use_domain)
    return rc


def is_subscriber(ctx: MsgContext, uri: str, table: str, flags: int) -> int:
    """1 when the user of ``uri`` is in ``table`` (flags 1: its domain too), loading the
    load_credentials AVPs unless flags has 2; -1 when not found, -2 on a bad URI or a database
    error."""
    try:
        parsed = parse_uri(uri)
    except SipParseError:
        return -2
    if not parsed.user:
        return -2
    subs = _subs()
    rows = subs.fetch(table, parsed.user, parsed.host, use_domain=bool(flags & 1))
    if rows is None:
        return -2
    if not rows:
        return -1
    if not flags & 2:
        subs.load_avps(ctx, rows[0])
    return 1
