"""sanity.so: RFC sanity checks on requests and replies, with Kamailio's replies.

``sanity_check([msg_checks[, uri_checks]])`` runs the checks whose bits are set (default: the
``default_checks`` parameter, 3047) and, on the first failure, answers the request statelessly
through the sl module with the reason Kamailio gives (e.g. ``400 CSeq method does not match
request method``, ``420 Bad Proxy Require Extension`` with ``Unsupported``). With ``noreply``
set, the reply waits for ``sanity_reply()``. In kamailio.cfg a failure ends the script when
``autodrop`` is set (the function returns 0); KEMI scripts get -1 and decide themselves.
"""

from __future__ import annotations

import logging

from kemi_core.api import CfgFunction, Core, KemiExport, MsgContext, export, hookimpl
from kemi_sanity.checks import DEFAULT_CHECKS, DEFAULT_URI_CHECKS, Failure, Settings, run_checks

log = logging.getLogger("kemi.sanity")

MODULE = "sanity"
_MAX_CHECKS = 2**15 - 1
#: ctx.extra key of the last failure (for sanity_reply).
_LAST = "sanity_failure"


class _State:
    core: Core | None = None
    default_checks = DEFAULT_CHECKS
    settings = Settings()
    autodrop = 1
    noreply = 0


_state = _State()


def exports() -> list[KemiExport]:
    return [
        export(MODULE, "sanity_check", sanity_check, "ii"),
        export(MODULE, "sanity_check_defaults", sanity_check_defaults, ""),
        export(MODULE, "sanity_reply", sanity_reply, ""),
    ]


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "default_checks", int, DEFAULT_CHECKS,
                       doc="checks run by sanity_check() without parameters (sum of check bits)")
    core.declare_param(MODULE, "uri_checks", int, DEFAULT_URI_CHECKS,
                       doc="URIs the parse-URIs check parses: 1 R-URI, 2 From, 4 To, 8 Contact")
    core.declare_param(MODULE, "proxy_require", str, "",
                       doc="comma-separated extensions accepted in Proxy-Require")
    core.declare_param(MODULE, "autodrop", int, 1,
                       doc="1: a failed check ends the kamailio.cfg script (returns 0)")
    core.declare_param(MODULE, "noreply", int, 0,
                       doc="1: send no reply on failure (sanity_reply() sends it)")
    core.add_cfg_function(CfgFunction(MODULE, "sanity_check", _cfg_sanity_check, 0, 2, (0, 1),
                                      sanity_check.__doc__ or ""))
    core.add_cfg_function(CfgFunction(MODULE, "sanity_reply", sanity_reply, 0, 0, (),
                                      sanity_reply.__doc__ or ""))


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    _state.core = core
    checks = int(core.modparam(MODULE, "default_checks"))
    uri_checks = int(core.modparam(MODULE, "uri_checks"))
    if not 0 <= checks <= _MAX_CHECKS:
        raise ValueError(f"sanity: default_checks {checks} is out of 0..{_MAX_CHECKS}")
    if not 1 <= uri_checks <= 15:
        raise ValueError(f"sanity: uri_checks {uri_checks} is out of 1..15")
    extensions = str(core.modparam(MODULE, "proxy_require"))
    _state.default_checks = checks
    _state.settings = Settings(uri_checks, frozenset(t.strip() for t in extensions.split(",")
                                                    if t.strip()))
    _state.autodrop = int(core.modparam(MODULE, "autodrop"))
    _state.noreply = int(core.modparam(MODULE, "noreply"))


def _valid(checks: int, uri_checks: int) -> bool:
    if not 0 <= checks <= _MAX_CHECKS:
        log.error("sanity_check: msg_checks %d is out of 0..%d", checks, _MAX_CHECKS)
        return False
    if not 1 <= uri_checks <= 16:
        log.error("sanity_check: uri_checks %d is out of 1..16", uri_checks)
        return False
    return True


def _run(ctx: MsgContext, checks: int, uri_checks: int) -> bool:
    """Run the checks; on a failure reply (unless noreply) and return False."""
    if not (0 <= checks <= _MAX_CHECKS and 1 <= uri_checks <= 16) and not _valid(checks,
                                                                                uri_checks):
        return False
    settings = _state.settings
    if uri_checks != settings.uri_checks:
        settings = Settings(uri_checks, settings.proxy_require)
    failure = run_checks(ctx.msg, checks, settings)
    if failure is None:
        return True
    log.debug("sanity check %d failed: %d %s", failure.check, failure.code, failure.reason)
    ctx.extra[_LAST] = failure
    if not _state.noreply:
        _reply(ctx, failure)
    return False


def _reply(ctx: MsgContext, failure: Failure) -> int:
    """Answer the request statelessly with the failure's code, reason and headers."""
    if failure.code == 0 or not ctx.msg.is_request or ctx.msg.method == "ACK":
        return -1
    sl = ctx.core.registry.lookup("sl", "sl_send_reply")
    if sl is None:
        log.error("sanity: the sl module is not loaded: no reply sent")
        return -1
    headers = ctx.extra.setdefault("reply_headers", [])
    headers.extend(f"{name}: {value}" for name, value in failure.headers)
    return int(sl.func(ctx, failure.code, failure.reason))


def sanity_check(ctx: MsgContext, msg_checks: int, uri_checks: int) -> int:
    """Run the sanity checks selected by ``msg_checks`` (sum of check bits: 1 R-URI version,
    2 R-URI scheme, 4 required headers, 32 CSeq method, 64 CSeq value, 128 Content-Length,
    256 Expires, 512 Proxy-Require, 1024 parse URIs, 2048 digest credentials, 4096 duplicate
    tags, 8192 Authorization, 16384 first Via); ``uri_checks`` picks the URIs parsed (1 R-URI,
    2 From, 4 To, 8 Contact). 1 when all pass; -1 after replying with the first failure."""
    return 1 if _run(ctx, msg_checks, uri_checks) else -1


def sanity_check_defaults(ctx: MsgContext) -> int:
    """sanity_check with the module's default_checks and uri_checks parameters."""
    return 1 if _run(ctx, _state.default_checks, _state.settings.uri_checks) else -1


def sanity_reply(ctx: MsgContext) -> int:
    """Send the reply of the last failed check (for ``noreply`` set); -1 when none failed."""
    failure = ctx.extra.get(_LAST)
    if failure is None:
        return -1
    return _reply(ctx, failure)


def _cfg_sanity_check(ctx: MsgContext, msg_checks: int | None = None,
                      uri_checks: int | None = None) -> int:
    checks = _state.default_checks if msg_checks is None else msg_checks
    uris = _state.settings.uri_checks if uri_checks is None else uri_checks
    if not _valid(checks, uris):
        return -1
    if _run(ctx, checks, uris):
        return 1
    return 0 if _state.autodrop else -1
