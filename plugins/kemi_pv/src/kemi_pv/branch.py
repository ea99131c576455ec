"""$branch(name): the attributes of the branches added to the destination set (append_branch,
lookup, ...), as Kamailio 5.6's pv module gives them.

``$branch(uri)`` is the first added branch (not the R-URI), ``$(branch(uri)[i])`` the i-th
(negative from the end; ``[*]`` the first); with no branch at all every name, ``count`` too, is
$null. ``q`` is an integer from 0 to 1000 ($null when the branch has none). Assigning works on
an existing branch only: ``uri = $null`` removes the branch, ``q`` and ``flags`` take integers
and the others text, ``send_socket`` must name one of our sockets (else it is cleared), and
``count``, ``ruid``, ``instance`` and ``location_ua`` are not changed (as Kamailio 5.6 does).
"""

from __future__ import annotations

from typing import Any

from kemi_core.api import Branch, Core, MsgContext, PvError

NAMES = ("uri", "dst_uri", "path", "q", "send_socket", "count", "flags", "ruid", "instance",
         "location_ua")
#: Names whose assignment Kamailio accepts and ignores.
_UNCHANGED = frozenset({"count", "ruid", "instance", "location_ua"})


def parse_name(arg: str) -> str:
    name = arg.strip()
    if name not in NAMES:
        raise PvError(f"$branch({arg}): unknown name (known: {', '.join(NAMES)})")
    return name


def _at(ctx: MsgContext, index: int | None) -> Branch | None:
    branches = ctx.branches
    i = 0 if index is None else index
    if -len(branches) <= i < len(branches):
        return branches[i]
    return None


def get_indexed(ctx: MsgContext, name: str, index: int | None) -> str | int | None:
    b = _at(ctx, index)
    if b is None:
        return None
    if name == "count":
        return len(ctx.branches)
    if name == "q":
        return None if b.q < 0 else b.q
    if name == "send_socket":
        return b.send_socket
    value: Any = getattr(b, name)
    return value  # type: ignore[no-any-return]


def get(ctx: MsgContext, name: str) -> str | int | None:
    return get_indexed(ctx, name, 0)


def set_indexed(ctx: MsgContext, name: str, index: int, value: str | int | None) -> None:
    b = _at(ctx, index)
    if b is None:
        raise PvError(f"$branch({name}): there is no branch {index}")
    if name in _UNCHANGED:
        return
    if name in ("q", "flags"):
        if value is not None and not isinstance(value, int):
            raise PvError(f"$branch({name}): an integer value is required, not {value!r}")
        if name == "q":
            b.q = -1 if value is None else value
        else:
            b.flags = value or 0
        return
    if value is not None and not isinstance(value, str):
        raise PvError(f"$branch({name}): a text value is required, not {value!r}")
    if name == "uri":
        if value is None:
            ctx.branches.remove(b)
        else:
            b.uri = value
    elif name == "dst_uri":
        b.dst_uri = value or None
    elif name == "path":
        b.path = value or None
    else:  # send_socket: one of ours, else none
        b.send_socket = value if value and _is_our_socket(ctx, value) else None


def set_first(ctx: MsgContext, name: str, value: str | int | None) -> None:
    set_indexed(ctx, name, 0, value)


def _is_our_socket(ctx: MsgContext, text: str) -> bool:
    proto, _, hostport = text.partition(":")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return False
    return any(lst.proto == proto.lower() and lst.host == host.strip("[]") and lst.port == int(port)
               for lst in ctx.core.config.listen)


def register_branch_pv(core: Core) -> None:
    core.pv.register("branch", get, set_first, takes_arg=True, parse_arg=parse_name,
                     index_getter=get_indexed, index_setter=set_indexed,
                     doc="attribute of an added branch: uri, dst_uri, path, q, send_socket, "
                         "count, flags, ruid, instance, location_ua (pv module)")
