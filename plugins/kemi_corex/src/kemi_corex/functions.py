"""corex's script functions: branches, sockets, extended flags, sending raw data, files."""

from __future__ import annotations

import logging

import attrs

from kemi_core.api import (
    Branch,
    MsgContext,
    PvError,
    SipParseError,
    parse_socket,
    parse_uri,
    set_pv,
    uri_destination,
)

log = logging.getLogger("kemi.corex")

#: Internal message flags msg_iflag_* knows (Kamailio's names).
IFLAGS = {"USE_UAC_FROM": 1, "USE_UAC_TO": 2, "UAC_AUTH": 4}
_XFLAGS = "corex_xflags"
_IFLAGS = "corex_iflags"


def _rc(ok: bool) -> int:
    return 1 if ok else -1


# ---- branches -------------------------------------------------------------------------
def _append(ctx: MsgContext, uri: str | None, q: str | None) -> int:
    if uri is None:
        if not ctx.msg.is_request:
            return -1
        branch = Branch(uri=ctx.msg.ruri, dst_uri=ctx.dst_uri, send_socket=ctx.send_socket)
    else:
        try:
            parse_uri(uri)
        except SipParseError:
            log.error("append_branch: invalid uri %r", uri)
            return -1
        branch = Branch(uri=uri, send_socket=ctx.send_socket)
    if q:
        try:
            branch.q = int(round(float(q) * 1000))
        except ValueError:
            log.error("append_branch: invalid q value %r", q)
            return -1
    ctx.branches.append(branch)
    return 1


def append_branch(ctx: MsgContext) -> int:
    """Add a branch with the current R-URI (and $du) to the destination set."""
    return _append(ctx, None, None)


def append_branch_uri(ctx: MsgContext, uri: str) -> int:
    """Add a branch to ``uri`` to the destination set."""
    return _append(ctx, uri, None)


def append_branch_uri_q(ctx: MsgContext, uri: str, q: str) -> int:
    """Add a branch to ``uri`` with the q value ``q`` (e.g. "0.5")."""
    return _append(ctx, uri, q)


# ---- extended and internal flags ------------------------------------------------------
def _xflag(ctx: MsgContext, flag: int) -> int | None:
    if not 0 <= flag <= 63:
        log.error("xflag %d is out of 0..63", flag)
        return None
    return 1 << flag


def setxflag(ctx: MsgContext, flag: int) -> int:
    """Set extended message flag ``flag`` (0..63)."""
    bit = _xflag(ctx, flag)
    if bit is None:
        return -1
    ctx.extra[_XFLAGS] = int(ctx.extra.get(_XFLAGS, 0)) | bit
    return 1


def resetxflag(ctx: MsgContext, flag: int) -> int:
    """Clear extended message flag ``flag`` (0..63)."""
    bit = _xflag(ctx, flag)
    if bit is None:
        return -1
    ctx.extra[_XFLAGS] = int(ctx.extra.get(_XFLAGS, 0)) & ~bit
    return 1


def isxflagset(ctx: MsgContext, flag: int) -> int:
    """1 when extended message flag ``flag`` (0..63) is set."""
    bit = _xflag(ctx, flag)
    return _rc(bit is not None and bool(int(ctx.extra.get(_XFLAGS, 0)) & bit))


def _iflag(name: str) -> int | None:
    bit = IFLAGS.get(name.strip().upper())
    if bit is None:
        log.error("unknown internal flag %r (known: %s)", name, ", ".join(IFLAGS))
    return bit


def msg_iflag_set(ctx: MsgContext, name: str) -> int:
    """Set the internal message flag ``name`` (USE_UAC_FROM, USE_UAC_TO, UAC_AUTH)."""
    bit = _iflag(name)
    if bit is None:
        return -1
    ctx.extra[_IFLAGS] = int(ctx.extra.get(_IFLAGS, 0)) | bit
    return 1


def msg_iflag_reset(ctx: MsgContext, name: str) -> int:
    """Clear the internal message flag ``name``."""
    bit = _iflag(name)
    if bit is None:
        return -1
    ctx.extra[_IFLAGS] = int(ctx.extra.get(_IFLAGS, 0)) & ~bit
    return 1


def msg_iflag_is_set(ctx: MsgContext, name: str) -> int:
    """1 when the internal message flag ``name`` is set, -2 when not (-1: unknown name)."""
    bit = _iflag(name)
    if bit is None:
        return -1
    return 1 if int(ctx.extra.get(_IFLAGS, 0)) & bit else -2


# ---- message tests --------------------------------------------------------------------
def has_ruri_user(ctx: MsgContext) -> int:
    """1 when the R-URI has a user part."""
    if not ctx.msg.is_request:
        return -1
    try:
        return _rc(bool(ctx.msg.uri.user))
    except SipParseError:
        return -1


def has_user_agent(ctx: MsgContext) -> int:
    """1 when the message has a non-empty User-Agent header."""
    return _rc(bool(ctx.msg.header("user-agent")))


def is_faked_msg(ctx: MsgContext) -> int:
    """1 for a message the server made up itself (a tm failure route after a timeout)."""
    return _rc(bool(ctx.extra.get("faked")))


# ---- sockets --------------------------------------------------------------------------
def _listen_of(ctx: MsgContext, spec: str) -> tuple[str, str, int] | None:
    parts = parse_socket(spec)
    if parts is None:
        return None
    for lst in ctx.core.config.listen:
        if (lst.proto, lst.host, lst.port) == parts:
            return parts
    return None


def _named(ctx: MsgContext, name: str) -> tuple[str, str, int] | None:
    for lst in ctx.core.config.listen:
        if lst.name and lst.name == name:
            return (lst.proto, lst.host, lst.port)
    return None


def set_send_socket(ctx: MsgContext, addr: str) -> int:
    """Send this message out of the local socket ``proto:ip:port``. When no listen socket
    matches, any socket may be used again (as in Kamailio, that is no failure)."""
    sock = _listen_of(ctx, addr)
    if sock is None:
        log.warning("set_send_socket: %r is not a local socket: not forcing one", addr)
        ctx.send_socket = None
        return 1
    ctx.send_socket = f"{sock[0]}:{sock[1]}:{sock[2]}"
    return 1


def set_send_socket_name(ctx: MsgContext, name: str) -> int:
    """Send this message out of the listen socket named ``name``."""
    sock = _named(ctx, name)
    if sock is None:
        log.error("set_send_socket_name: no socket is named %r", name)
        return -1
    ctx.send_socket = f"{sock[0]}:{sock[1]}:{sock[2]}"
    return 1


def _set_recv(ctx: MsgContext, sock: tuple[str, str, int] | None, what: str) -> int:
    if sock is None:
        log.error("%s: no such local socket", what)
        return -1
    proto, ip, port = sock
    # a new RecvInfo for this message: a stream connection hands one to all its messages
    ctx.rcv = attrs.evolve(ctx.rcv, proto=proto, dst_ip=ip, dst_port=port)
    return 1


def set_recv_socket(ctx: MsgContext, addr: str) -> int:
    """Handle the message as if it arrived on the local socket ``proto:ip:port``."""
    return _set_recv(ctx, _listen_of(ctx, addr), "set_recv_socket")


def set_recv_socket_name(ctx: MsgContext, name: str) -> int:
    """Handle the message as if it arrived on the listen socket named ``name``."""
    return _set_recv(ctx, _named(ctx, name), "set_recv_socket_name")


def set_source_address(ctx: MsgContext, addr: str) -> int:
    """Handle the message as if it came from ``proto:ip:port`` ($si, $sp, replies)."""
    parts = parse_socket(addr)
    if parts is None:
        log.error("set_source_address: bad address %r", addr)
        return -1
    _, ip, port = parts
    # a new RecvInfo for this message: a stream connection hands one to all its messages
    ctx.rcv = attrs.evolve(ctx.rcv, src_ip=ip, src_port=port)
    return 1


def is_socket_name(ctx: MsgContext, name: str) -> int:
    """1 when a listen socket is named ``name``."""
    return _rc(_named(ctx, name) is not None)


# ---- sending raw data -----------------------------------------------------------------
def send_data(ctx: MsgContext, uri: str, data: str) -> int:
    """Send ``data`` as it is to the address of the SIP URI ``uri``."""
    return sendx(ctx, uri, "", data)


def sendx(ctx: MsgContext, uri: str, sock: str, data: str) -> int:
    """Send ``data`` to the address of ``uri`` from the local socket ``sock`` (empty: any)."""
    try:
        dest = uri_destination(uri)
    except SipParseError:
        dest = None
    if dest is None:
        log.error("send_data: cannot resolve %r", uri)
        return -1
    local = None
    if sock:
        parts = _listen_of(ctx, sock)
        if parts is None:
            log.error("sendx: %r is not a local socket", sock)
            return -1
        local = (parts[1], parts[2])
    return _rc(ctx.core.send(dest[0], dest[1], dest[2], data.encode(), local))


def send_raw(ctx: MsgContext, proto: str, dest: str | None) -> int:
    """send_udp/send_tcp: the message as received (no Via added) to ``dest`` (host[:port]),
    else to $du or the R-URI."""
    if dest:
        target = f"sip:{dest}" if not dest.lower().startswith(("sip:", "sips:")) else dest
    else:
        target = ctx.dst_uri or ctx.msg.ruri
    try:
        found = uri_destination(target)
    except SipParseError:
        found = None
    if found is None:
        log.error("send_%s: cannot resolve %r", proto, target)
        return -1
    return _rc(ctx.core.send(proto, found[1], found[2], ctx.msg.to_bytes()))


# ---- files ----------------------------------------------------------------------------
_MAX_FILE = 1 << 20


def file_read(ctx: MsgContext, path: str) -> str | None:
    """The content of the text file ``path`` (at most 1 MiB); None when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_FILE + 1)
    except OSError as exc:
        log.error("file_read: %s: %s", path, exc.strerror)
        return None
    if len(data) > _MAX_FILE:
        log.error("file_read: %s is larger than %d bytes", path, _MAX_FILE)
        return None
    return data.decode("utf-8", "replace")


def file_read_into(ctx: MsgContext, path: str, var: str) -> int:
    """file_read(fpath, var) of kamailio.cfg: the file's content into variable ``var``."""
    text = file_read(ctx, path)
    if text is None:
        return -1
    try:
        set_pv(ctx, var, text)
    except PvError as exc:
        log.error("file_read: cannot set %s: %s", var, exc)
        return -1
    return 1


def file_write(ctx: MsgContext, path: str, content: str) -> int:
    """Write ``content`` to the file ``path`` (replacing it)."""
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(content)
    except OSError as exc:
        log.error("file_write: %s: %s", path, exc.strerror)
        return -1
    return 1


def forward_reply(ctx: MsgContext) -> int:
    """Send the current reply on statelessly now (pop our Via, to the next one)."""
    if ctx.msg.is_request:
        log.error("forward_reply: the current message is a request")
        return -1
    if not ctx.core.forward_reply_statelessly(ctx):
        return -1
    ctx.dropped = True  # already sent: the core must not forward it again
    return 1
