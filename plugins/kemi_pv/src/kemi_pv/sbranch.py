"""The static branch ($sbranch(key)) and sbranch_set_ruri / sbranch_append / sbranch_reset.

As in Kamailio it is one per process, kept across messages until sbranch_reset(); here one
per Core (a process has one).
"""

from __future__ import annotations

import weakref
from typing import Any

from kemi_core.api import Branch, Core, MsgContext, PvError

KEYS = ("uri", "dst_uri", "path", "q", "send_socket", "flags", "instance", "ruid")
_INT_KEYS = ("q", "flags")

_STATIC: weakref.WeakKeyDictionary[Core, dict[str, Any]] = weakref.WeakKeyDictionary()


def static_branch(core: Core) -> dict[str, Any]:
    return _STATIC.setdefault(core, {})


def _key(arg: str) -> str:
    key = arg.strip()
    if key not in KEYS:
        raise PvError(f"$sbranch({arg}): unknown key (known: {', '.join(KEYS)})")
    return key


def _get(ctx: MsgContext, key: str) -> str | int | None:
    return static_branch(ctx.core).get(key)  # type: ignore[no-any-return]


def _set(ctx: MsgContext, key: str, value: str | int | None) -> None:
    sb = static_branch(ctx.core)
    if value is None:
        sb.pop(key, None)
    elif key in _INT_KEYS:
        sb[key] = int(value)
    else:
        sb[key] = str(value)


def register_sbranch_pv(core: Core) -> None:
    core.pv.register("sbranch", _get, _set, takes_arg=True, parse_arg=_key,
                     doc="static branch attribute (pv module)")


def sbranch_set_ruri(ctx: MsgContext) -> int:
    """Make the static branch the R-URI branch: R-URI, $du, send socket, branch flags."""
    sb = static_branch(ctx.core)
    if not ctx.msg.is_request or not sb.get("uri"):
        return -1
    ctx.msg.set_ruri(sb["uri"])
    ctx.dst_uri = sb.get("dst_uri")
    if sb.get("send_socket"):
        ctx.send_socket = sb["send_socket"]
    if "flags" in sb:
        ctx.bflags = sb["flags"]
    return 1


def sbranch_append(ctx: MsgContext) -> int:
    """Add the static branch to the destination set."""
    sb = static_branch(ctx.core)
    if not sb.get("uri"):
        return -1
    ctx.branches.append(Branch(uri=sb["uri"], dst_uri=sb.get("dst_uri"), path=sb.get("path"),
                               q=sb.get("q", -1), flags=sb.get("flags", 0),
                               send_socket=sb.get("send_socket"), instance=sb.get("instance"),
                               ruid=sb.get("ruid")))
    return 1


def sbranch_reset(ctx: MsgContext) -> int:
    """Empty the static branch."""
    static_branch(ctx.core).clear()
    return 1
