"""Message, branch and script flags: KSR.setflag ... KSR.issflagset (bits 0..31)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core.core_exports.log import script_log
from kemi_core.kemi.exports import KemiExport, ReturnKind, export

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

MAX_FLAG = 31


def _valid(flag: int) -> bool:
    if 0 <= flag <= MAX_FLAG:
        return True
    script_log.error("invalid flag parameter %d (0..%d)", flag, MAX_FLAG)
    return False


def setflag(ctx: MsgContext, flag: int) -> bool:
    """Set message flag ``flag``."""
    if not _valid(flag):
        return False
    ctx.flags |= 1 << flag
    return True


def resetflag(ctx: MsgContext, flag: int) -> bool:
    """Clear message flag ``flag``."""
    if not _valid(flag):
        return False
    ctx.flags &= ~(1 << flag)
    return True


def isflagset(ctx: MsgContext, flag: int) -> bool:
    """True when message flag ``flag`` is set."""
    return _valid(flag) and bool(ctx.flags & (1 << flag))


def _get_bflags(ctx: MsgContext, branch: int) -> int | None:
    if branch == 0:
        return ctx.bflags
    if 1 <= branch <= len(ctx.branches):
        return ctx.branches[branch - 1].flags
    script_log.error("branch index %d is out of range", branch)
    return None


def _put_bflags(ctx: MsgContext, branch: int, value: int) -> None:
    if branch == 0:
        ctx.bflags = value
    else:
        ctx.branches[branch - 1].flags = value


def setbiflag(ctx: MsgContext, flag: int, branch: int) -> bool:
    """Set branch flag ``flag`` on branch ``branch`` (0 = the R-URI branch)."""
    cur = _get_bflags(ctx, branch) if _valid(flag) else None
    if cur is None:
        return False
    _put_bflags(ctx, branch, cur | (1 << flag))
    return True


def resetbiflag(ctx: MsgContext, flag: int, branch: int) -> bool:
    """Clear branch flag ``flag`` on branch ``branch``."""
    cur = _get_bflags(ctx, branch) if _valid(flag) else None
    if cur is None:
        return False
    _put_bflags(ctx, branch, cur & ~(1 << flag))
    return True


def isbiflagset(ctx: MsgContext, flag: int, branch: int) -> bool:
    """True when branch flag ``flag`` is set on branch ``branch``."""
    cur = _get_bflags(ctx, branch) if _valid(flag) else None
    return cur is not None and bool(cur & (1 << flag))


def setbflag(ctx: MsgContext, flag: int) -> bool:
    """Set branch flag ``flag`` on branch 0."""
    return setbiflag(ctx, flag, 0)


def resetbflag(ctx: MsgContext, flag: int) -> bool:
    """Clear branch flag ``flag`` on branch 0."""
    return resetbiflag(ctx, flag, 0)


def isbflagset(ctx: MsgContext, flag: int) -> bool:
    """True when branch flag ``flag`` is set on branch 0."""
    return isbiflagset(ctx, flag, 0)


# Script flags live only while the script runs for this message ($sf).
def setsflag(ctx: MsgContext, flag: int) -> bool:
    """Set script flag ``flag``."""
    if not _valid(flag):
        return False
    ctx.extra["sflags"] = int(ctx.extra.get("sflags", 0)) | (1 << flag)
    return True


def resetsflag(ctx: MsgContext, flag: int) -> bool:
    """Clear script flag ``flag``."""
    if not _valid(flag):
        return False
    ctx.extra["sflags"] = int(ctx.extra.get("sflags", 0)) & ~(1 << flag)
    return True


def issflagset(ctx: MsgContext, flag: int) -> bool:
    """True when script flag ``flag`` is set."""
    return _valid(flag) and bool(int(ctx.extra.get("sflags", 0)) & (1 << flag))


def exports() -> list[KemiExport]:
    b = ReturnKind.BOOL
    return [
        export("", "setflag", setflag, "i", b),
        export("", "resetflag", resetflag, "i", b),
        export("", "isflagset", isflagset, "i", b),
        export("", "setbflag", setbflag, "i", b),
        export("", "resetbflag", resetbflag, "i", b),
        export("", "isbflagset", isbflagset, "i", b),
        export("", "setbiflag", setbiflag, "ii", b),
        export("", "resetbiflag", resetbiflag, "ii", b),
        export("", "isbiflagset", isbiflagset, "ii", b),
        export("", "setsflag", setsflag, "i", b),
        export("", "resetsflag", resetsflag, "i", b),
        export("", "issflagset", issflagset, "i", b),
    ]
