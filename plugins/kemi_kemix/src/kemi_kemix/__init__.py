"""kemix.so: the KSR.kx.* getters: message attributes as plain values, the way Kamailio's
kemix module returns them.

Each attribute comes in up to three forms, as in Kamailio: ``get_x`` returns None (nil in Lua)
when the value is missing, ``gete_x`` an empty string and ``getw_x`` the text ``<null>``.
``get_def``/``ifdef`` read the config's ``#!define`` names, ``get_env`` the environment.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from kemi_core.api import (
    Core,
    KemiExport,
    MsgContext,
    PvError,
    ReturnKind,
    export,
    get_pv,
    hookimpl,
)

MODULE = "kx"
NULL_TEXT = "<null>"

_state: dict[str, Any] = {"defines": {}}


def _pv(name: str) -> Callable[[MsgContext], Any]:
    def read(ctx: MsgContext) -> Any:
        try:
            value = get_pv(ctx, name)
        except (PvError, ValueError):
            return None
        return None if value == "" and name in _EMPTY_IS_NULL else value
    return read


#: PVs whose empty value Kamailio reports as missing ($rU of a URI without user ...).
_EMPTY_IS_NULL = frozenset({"$rU", "$fU", "$tU", "$du", "$ua", "$au", "$rb"})


def _cturi(ctx: MsgContext) -> str | None:
    try:
        contacts = ctx.msg.contacts
    except Exception:  # a malformed Contact reads as missing, as in Kamailio
        return None
    return contacts[0].uri_text if contacts and not contacts[0].is_star else None


def _nhuri(ctx: MsgContext) -> str | None:
    return ctx.dst_uri or (ctx.msg.ruri if ctx.msg.is_request else None)


def _send_sock(ctx: MsgContext) -> str | None:
    if ctx.send_socket:
        return ctx.send_socket
    return None


def _send_sock_port(ctx: MsgContext) -> int:
    sock = _send_sock(ctx)
    if not sock:
        return 0
    try:
        return int(sock.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def _rcv_sock_name(ctx: MsgContext) -> str | None:
    for lst in ctx.core.config.listen:
        if (lst.host, lst.port) == (ctx.rcv.dst_ip, ctx.rcv.dst_port):
            return getattr(lst, "name", None) or None
    return None


def _rcvadv(ctx: MsgContext, what: str) -> Any:
    for lst in ctx.core.config.listen:
        if (lst.host, lst.port) == (ctx.rcv.dst_ip, ctx.rcv.dst_port):
            host = getattr(lst, "advertise_host", None)
            port = getattr(lst, "advertise_port", None)
            if what == "ip":
                return host or ctx.rcv.dst_ip
            return port or ctx.rcv.dst_port
    return ctx.rcv.dst_ip if what == "ip" else ctx.rcv.dst_port


def _au(ctx: MsgContext) -> str | None:
    """The username of the first Authorization / Proxy-Authorization credentials."""
    import re

    for name in ("authorization", "proxy-authorization"):
        value = ctx.msg.header(name)
        if value:
            m = re.search(r'username\s*=\s*"([^"]*)"', value)
            if m:
                return m.group(1)
    return None


_PROTO_IDS = {"udp": 1, "tcp": 2, "tls": 3, "sctp": 4, "ws": 5, "wss": 6}

#: name -> (reader, forms): forms among "" (get_), "e" (gete_), "w" (getw_).
ATTRIBUTES: list[tuple[str, Callable[[MsgContext], Any], str]] = [
    ("ruri", _pv("$ru"), ""),
    ("ruser", _pv("$rU"), "ew"),
    ("rhost", _pv("$rd"), "ew"),
    ("ouri", _pv("$ou"), ""),
    ("furi", _pv("$fu"), ""),
    ("fuser", _pv("$fU"), "ew"),
    ("fhost", _pv("$fd"), "ew"),
    ("turi", _pv("$tu"), ""),
    ("tuser", _pv("$tU"), "ew"),
    ("thost", _pv("$td"), "ew"),
    ("duri", lambda c: c.dst_uri or None, "ew"),
    ("cturi", _cturi, "ew"),
    ("nhuri", _nhuri, ""),
    ("srcuri", _pv("$su"), ""),
    ("srcaddr_sock", lambda c: f"{c.rcv.proto}:{c.rcv.src_ip}:{c.rcv.src_port}", ""),
    ("ua", _pv("$ua"), "ew"),
    ("srcip", lambda c: c.rcv.src_ip, ""),
    ("srcport", lambda c: c.rcv.src_port, ""),
    ("send_sock", _send_sock, ""),
    ("send_sock_name", lambda c: None, ""),
    ("rcvip", lambda c: c.rcv.dst_ip, ""),
    ("rcv_sock_name", _rcv_sock_name, ""),
    ("rcvport", lambda c: c.rcv.dst_port, ""),
    ("rcvadvip", lambda c: _rcvadv(c, "ip"), ""),
    ("rcvadvport", lambda c: _rcvadv(c, "port"), ""),
    ("rcvaddr_sock", lambda c: f"{c.rcv.proto}:{c.rcv.dst_ip}:{c.rcv.dst_port}", ""),
    ("proto", lambda c: c.rcv.proto, ""),
    ("au", _au, "ew"),
    ("method", lambda c: c.msg.method, ""),
    ("body", lambda c: c.msg.body.decode("utf-8", "replace") or None, "ew"),
    ("callid", _pv("$ci"), ""),
    ("msgbuf", lambda c: c.msg.to_bytes().decode("utf-8", "replace"), ""),
]


def _form(name: str, reader: Callable[[MsgContext], Any], form: str) -> KemiExport:
    def get(ctx: MsgContext) -> Any:
        value = reader(ctx)
        if value is None and form:
            return "" if form == "e" else NULL_TEXT
        return value
    what = name.replace("_", " ")
    tail = {"": "None when missing", "e": "'' when missing", "w": "'<null>' when missing"}[form]
    get.__doc__ = f"The message's {what} ({tail})."
    return export(MODULE, f"get{form}_{name}", get, "", ReturnKind.XVAL)


def get_send_sock_port(ctx: MsgContext) -> int:
    """Port of the socket forced for sending (force_send_socket), 0 when none is set."""
    return _send_sock_port(ctx)


def get_protoid(ctx: MsgContext) -> int:
    """Transport id of the message: 1 UDP, 2 TCP, 3 TLS, 4 SCTP, 5 WS, 6 WSS."""
    return _PROTO_IDS.get(ctx.rcv.proto, 0)


def get_status(ctx: MsgContext) -> int:
    """Status code of a reply; -1 for a request."""
    return ctx.msg.status if not ctx.msg.is_request else -1


def gets_status(ctx: MsgContext) -> str | None:
    """Status code of a reply as text; None for a request."""
    return str(ctx.msg.status) if not ctx.msg.is_request else None


def get_bodylen(ctx: MsgContext) -> int:
    """Length of the message body in bytes."""
    return len(ctx.msg.body)


def get_timestamp(ctx: MsgContext) -> int:
    """Current Unix time in seconds."""
    return int(time.time())


def get_conid(ctx: MsgContext) -> int:
    """Id of the TCP connection the message came on; -1 for UDP."""
    conid = ctx.extra.get("conid")
    return int(conid) if conid is not None else -1


def get_msglen(ctx: MsgContext) -> int:
    """Length of the whole message in bytes."""
    return len(ctx.msg.to_bytes())


def get_msgtype(ctx: MsgContext) -> int:
    """1 for a request, 2 for a reply."""
    return 1 if ctx.msg.is_request else 2


def get_def(ctx: MsgContext, name: str) -> str:
    """Value of the config's ``#!define name`` as written (quotes kept); '' when not defined."""
    return str(_state["defines"].get(name) or "")


def get_defn(ctx: MsgContext, name: str) -> int:
    """Value of ``#!define name`` as an integer; 0 when not defined or not a number."""
    value = get_def(ctx, name).strip("\"'")
    try:
        return int(value, 0) if value else 0
    except ValueError:
        return 0


def ifdef(ctx: MsgContext, name: str) -> bool:
    """True when the config defines ``name`` (#!define)."""
    return name in _state["defines"]


def ifndef(ctx: MsgContext, name: str) -> bool:
    """True when the config does not define ``name``."""
    return name not in _state["defines"]


def get_env(ctx: MsgContext, name: str) -> str | None:
    """Value of the environment variable ``name``; None when unset."""
    return os.environ.get(name)


def get_envn(ctx: MsgContext, name: str) -> int:
    """Value of the environment variable ``name`` as an integer; 0 when unset or not a number."""
    try:
        return int(os.environ.get(name, "0"), 0)
    except ValueError:
        return 0


def exports() -> list[KemiExport]:
    out = [_form(name, reader, form) for name, reader, forms in ATTRIBUTES for form in ("", *forms)]
    ints = [get_send_sock_port, get_protoid, get_status, get_bodylen, get_timestamp, get_conid,
            get_msglen, get_msgtype]
    out += [export(MODULE, fn.__name__, fn, "", ReturnKind.INT) for fn in ints]
    out.append(export(MODULE, "gets_status", gets_status, "", ReturnKind.XVAL))
    out += [export(MODULE, fn.__name__, fn, "s", ReturnKind.XVAL) for fn in (get_def, get_env)]
    out += [export(MODULE, fn.__name__, fn, "s", ReturnKind.INT) for fn in (get_defn, get_envn)]
    out += [export(MODULE, fn.__name__, fn, "s", ReturnKind.BOOL) for fn in (ifdef, ifndef)]
    return out


@hookimpl
def mod_register(core: Core) -> None:
    _state["defines"] = dict(getattr(core.config, "defines", {}) or {})


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()
