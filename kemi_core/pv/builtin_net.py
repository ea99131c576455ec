"""Pseudo-variables about where a message came from, flags, branches, time and process."""

from __future__ import annotations

import itertools
import os
import time
from typing import TYPE_CHECKING

from kemi_core.forwarding.targets import parse_socket
from kemi_core.pv.registry import PvError, PvValue, register_builtin
from kemi_core.runtime.context import Branch

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext

_msg_ids = itertools.count(1)


def msg_id(ctx: MsgContext) -> int:
    """Kamailio's per-process message id ($mi); the dispatcher may set ctx.extra["msg_id"]."""
    mid = ctx.extra.get("msg_id")
    if mid is None:
        mid = ctx.extra["msg_id"] = next(_msg_ids)
    return int(mid)


def _bracketed(ip: str) -> str:
    return f"[{ip}]" if ":" in ip and not ip.startswith("[") else ip


def _src_uri(ctx: MsgContext) -> str:
    r = ctx.rcv
    uri = f"sip:{_bracketed(r.src_ip)}:{r.src_port}"
    return uri if r.proto == "udp" else f"{uri};transport={r.proto}"


def _to_int(value: PvValue, what: str) -> int:
    try:
        return int(value or 0)
    except ValueError:
        raise PvError(f"{what} needs an integer, not {value!r}")


def _set_flags(ctx: MsgContext, value: PvValue) -> None:
    ctx.flags = _to_int(value, "$mf") & 0xFFFFFFFF


def _set_bflags(ctx: MsgContext, value: PvValue) -> None:
    ctx.bflags = _to_int(value, "$bf") & 0xFFFFFFFF


def _set_sflags(ctx: MsgContext, value: PvValue) -> None:
    ctx.extra["sflags"] = _to_int(value, "$sf") & 0xFFFFFFFF


def _set_br(ctx: MsgContext, value: PvValue) -> None:
    # $br names the first additional branch: assigning rewrites it, or adds it when absent.
    if value in (None, ""):
        if ctx.branches:
            del ctx.branches[0]
        return
    if ctx.branches:
        ctx.branches[0].uri = str(value)
    else:
        ctx.branches.append(Branch(uri=str(value)))


def _set_fs(ctx: MsgContext, value: PvValue) -> None:
    ctx.send_socket = None if value in (None, "") else str(value)


def _fsn(ctx: MsgContext) -> str | None:
    """The name of the listen socket forced for sending (``listen=... name "x"``)."""
    forced = ctx.send_socket
    parts = parse_socket(forced) if forced else None
    if parts is None:
        return None
    proto, host, port = parts
    for lst in ctx.core.config.listen:
        if (lst.proto, lst.host, lst.port) == (proto, host, port):
            return lst.name
    return None


def _set_fsn(ctx: MsgContext, value: PvValue) -> None:
    """Force sending from the listen socket of this name (none: no socket forced)."""
    if value in (None, ""):
        ctx.send_socket = None
        return
    for lst in ctx.core.config.listen:
        if lst.name == str(value):
            host = f"[{lst.host}]" if ":" in lst.host else lst.host
            ctx.send_socket = f"{lst.proto}:{host}:{lst.port}"
            return
    raise PvError(f"$fsn: no listen socket is named {value!r}")


def _ts_cached(ctx: MsgContext) -> int:
    ts = ctx.extra.get("pv_ts")
    if ts is None:
        ts = ctx.extra["pv_ts"] = int(time.time())
    return int(ts)


def _fmt_time(ts: float) -> str:
    return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(ts))


def q_text(q: int) -> str:
    """A q value kept as 0..1000 as SIP writes it: 1000 -> "1", 500 -> "0.5", 0 -> "0"."""
    if q >= 1000:
        return "1"
    return "0" if q <= 0 else "0." + f"{q:03d}".rstrip("0")


def _all_branches(ctx: MsgContext) -> str | None:
    if not ctx.branches:
        return None
    return ", ".join(b.uri if b.q < 0 else f"<{b.uri}>;q={q_text(b.q)}" for b in ctx.branches)


#: Kamailio's numbers for the transports ($snd(proto), $pr's number)
_PROTO_NUMBERS = {"udp": 1, "tcp": 2, "tls": 3, "sctp": 4, "ws": 5, "wss": 6}
#: the names $snd(...) takes in Kamailio 5.6 (any other refuses the config)
_SND_NAMES = frozenset(("ip", "port", "proto", "sproto", "af", "buf", "len"))


def _snd_name(arg: str) -> str:
    name = arg.strip()
    if name not in _SND_NAMES:
        raise PvError(f"unknown $snd name {name!r}")
    return name


def _snd(ctx: MsgContext, name: str) -> PvValue:
    """$snd(name): where the message onsend_route runs for goes (ip, port, proto as Kamailio's
    number, sproto as its name, af 2/10) and what goes (buf, len); $null elsewhere."""
    info = ctx.extra.get("send_info")
    if not isinstance(info, dict):
        return None
    if name == "ip":
        return str(info["host"])
    if name == "port":
        return int(info["port"])
    if name == "sproto":
        return str(info["proto"])
    if name == "proto":
        return _PROTO_NUMBERS.get(str(info["proto"]), 0)
    if name == "af":
        return 10 if ":" in str(info["host"]) else 2
    data = info.get("buf", b"")
    if name == "len":
        return len(data)
    return data.decode("utf-8", "replace")


def _register() -> None:
    reg = register_builtin
    reg("si", lambda c: c.rcv.src_ip, doc="source IP")
    reg("siz", lambda c: _bracketed(c.rcv.src_ip), doc="source IP, IPv6 in brackets")
    reg("sp", lambda c: c.rcv.src_port, doc="source port")
    reg("su", _src_uri, doc="source address as a SIP URI")
    reg("Ri", lambda c: c.rcv.dst_ip, doc="local IP the message arrived on")
    reg("Rp", lambda c: c.rcv.dst_port, doc="local port the message arrived on")
    # the native engine keeps the last return code in ctx.extra["retcode"] (kemi_core.native)
    for name in ("rc", "retcode"):
        reg(name, lambda c: c.extra.get("retcode", 1), doc="return code of the last function")
    reg("snd", _snd, takes_arg=True, parse_arg=_snd_name,
        doc="where the message goes and its bytes, in onsend_route: ip, port, proto, sproto, "
            "af, buf, len")
    reg("pr", lambda c: c.rcv.proto, doc="transport protocol of the message")
    reg("proto", lambda c: c.rcv.proto, doc="alias of $pr")
    reg("mf", lambda c: c.flags, _set_flags, doc="message flags")
    reg("bf", lambda c: c.bflags, _set_bflags, doc="branch flags of branch 0")
    reg("sf", lambda c: int(c.extra.get("sflags", 0)), _set_sflags, doc="script flags")
    reg("mF", lambda c: f"{c.flags:08x}", _set_flags, doc="$mf in hexadecimal")
    reg("bF", lambda c: f"{c.bflags:08x}", _set_bflags, doc="$bf in hexadecimal")
    reg("sF", lambda c: f"{int(c.extra.get('sflags', 0)):08x}", _set_sflags,
        doc="$sf in hexadecimal")
    reg("br", lambda c: c.branches[0].uri if c.branches else None, _set_br,
        doc="URI of the first added branch")
    reg("bR", _all_branches, doc="all added branches: <uri>;q=0.5 (just the URI without q), ', '-joined")
    reg("fs", lambda c: c.send_socket, _set_fs, doc="forced send socket")
    reg("fsn", _fsn, _set_fsn, doc="name of the forced send socket")
    reg("mi", msg_id, doc="message id")
    reg("pp", lambda c: os.getpid(), doc="process id")
    reg("Ts", _ts_cached, doc="unix time, cached per message")
    reg("TS", lambda c: int(time.time()), doc="current unix time")
    reg("Tb", lambda c: int(c.core.started_at), doc="start-up unix time")
    reg("Tf", lambda c: _fmt_time(_ts_cached(c)), doc="formatted time, cached per message")
    reg("TF", lambda c: _fmt_time(time.time()), doc="formatted current time")
    reg("null", lambda c: None, doc="the $null value")


_register()
