"""R-URI and destination URI: KSR.seturi, setuser, sethost, setdsturi, resetdsturi,
isdsturiset."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core.core_exports.log import script_log
from kemi_core.kemi.exports import KemiExport, ReturnKind, export
from kemi_core.pv._util import parse_uri_or_none
from kemi_core.pv.builtin_msg import rewrite_ruri
from kemi_core.pv.registry import PvError

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext


def seturi(ctx: MsgContext, uri: str) -> bool:
    """Replace the Request-URI."""
    if not ctx.msg.is_request or parse_uri_or_none(uri) is None:
        script_log.error("seturi: invalid uri parameter %r", uri)
        return False
    ctx.msg.set_ruri(uri)
    return True


def _rewrite(ctx: MsgContext, what: str, **changes: object) -> bool:
    try:
        rewrite_ruri(ctx, **changes)
    except (PvError, ValueError) as exc:
        script_log.error("%s: updating r-uri failed: %s", what, exc)
        return False
    return True


def setuser(ctx: MsgContext, user: str) -> bool:
    """Replace the user part of the R-URI (an empty user removes it)."""
    if user:
        return _rewrite(ctx, "setuser", user=user)
    return _rewrite(ctx, "setuser", user=None, password=None)


def sethost(ctx: MsgContext, host: str) -> bool:
    """Replace the host part of the R-URI."""
    if not host:
        script_log.error("sethost: invalid host parameter")
        return False
    return _rewrite(ctx, "sethost", host=host)


def setdsturi(ctx: MsgContext, uri: str) -> bool:
    """Set the destination URI ($du) the request is sent to instead of the R-URI."""
    if parse_uri_or_none(uri) is None:
        script_log.error("setdsturi: setting dst uri failed: invalid uri %r", uri)
        return False
    ctx.dst_uri = uri
    return True


def resetdsturi(ctx: MsgContext) -> bool:
    """Forget $du."""
    ctx.dst_uri = None
    return True


def isdsturiset(ctx: MsgContext) -> bool:
    """True when $du is set."""
    return bool(ctx.dst_uri)


def exports() -> list[KemiExport]:
    b = ReturnKind.BOOL
    return [
        export("", "seturi", seturi, "s", b),
        export("", "setuser", setuser, "s", b),
        export("", "sethost", sethost, "s", b),
        export("", "setdsturi", setdsturi, "s", b),
        export("", "resetdsturi", resetdsturi, "", b),
        export("", "isdsturiset", isdsturiset, "", b),
    ]
