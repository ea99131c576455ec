"""Kamailio core statements the native language has built in (not module functions).

setflag & co., force_rport, forward, append_branch, the R-URI rewriting family
(rewritehost/sethost, prefix, strip ...), log, force_send_socket and the connection flags.
They reuse the core KEMI exports (kemi_core.core_exports) so both worlds behave alike.
``exit``, ``drop``, ``return``, ``break`` and ``route()`` are grammar, not functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_core.core_exports import flags, forward, uri
from kemi_core.core_exports.log import emit, kamailio_level, script_log
from kemi_core.pv._util import parse_uri_or_none
from kemi_core.runtime.context import Branch
from kemi_core.runtime.core import CfgFunction

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext


# ---- flags -------------------------------------------------------------------------------
def _bflag(one: Callable[[MsgContext, int], bool],
           indexed: Callable[[MsgContext, int, int], bool]) -> Callable[..., bool]:
    """setbflag(flag) works on branch 0; setbflag(flag, branch) on that branch."""
    def fn(ctx: MsgContext, flag: int, branch: int | None = None) -> bool:
        return one(ctx, flag) if branch is None else indexed(ctx, flag, branch)
    # a call site with its argument count known calls these directly (calls.call_site)
    fn.by_args = {1: one, 2: indexed}  # type: ignore[attr-defined]
    return fn


# ---- R-URI rewriting ---------------------------------------------------------------------
def _ruri_user(ctx: MsgContext) -> str | None:
    parsed = parse_uri_or_none(ctx.msg.ruri) if ctx.msg.is_request else None
    return None if parsed is None else (parsed.user or "")


def prefix(ctx: MsgContext, text: str) -> bool:
    """Add ``text`` in front of the R-URI user."""
    user = _ruri_user(ctx)
    return user is not None and uri.setuser(ctx, text + user)


def strip(ctx: MsgContext, n: int) -> bool:
    """Remove the first ``n`` characters of the R-URI user."""
    user = _ruri_user(ctx)
    if user is None or n < 0 or n > len(user):
        script_log.error("strip: cannot strip %d characters from %r", n, user)
        return False
    return uri.setuser(ctx, user[n:])


def strip_tail(ctx: MsgContext, n: int) -> bool:
    """Remove the last ``n`` characters of the R-URI user."""
    user = _ruri_user(ctx)
    if user is None or n < 0 or n > len(user):
        script_log.error("strip_tail: cannot strip %d characters from %r", n, user)
        return False
    return uri.setuser(ctx, user[:len(user) - n])


def _rewrite(ctx: MsgContext, what: str, **changes: object) -> bool:
    return uri._rewrite(ctx, what, **changes)


def setport(ctx: MsgContext, port: str) -> bool:
    """Replace the R-URI port (empty removes it)."""
    if port == "":
        return _rewrite(ctx, "setport", port=None)
    try:
        value = int(port)
    except ValueError:
        script_log.error("setport: invalid port %r", port)
        return False
    return _rewrite(ctx, "setport", port=value)


def sethostport(ctx: MsgContext, hostport: str) -> bool:
    """Replace the R-URI host and port ("host" or "host:port")."""
    host, sep, port = hostport.rpartition(":") if hostport.count(":") == 1 else (hostport, "", "")
    if not sep:
        return _rewrite(ctx, "sethostport", host=hostport, port=None)
    try:
        return _rewrite(ctx, "sethostport", host=host, port=int(port))
    except ValueError:
        script_log.error("sethostport: invalid port in %r", hostport)
        return False


def setuserpass(ctx: MsgContext, userpass: str) -> bool:
    """Replace the R-URI "user:password"."""
    user, sep, password = userpass.partition(":")
    return _rewrite(ctx, "setuserpass", user=user or None, password=password if sep else None)


def revert_uri(ctx: MsgContext) -> bool:
    """Restore the R-URI as received."""
    if ctx.orig_ruri is not None and ctx.msg.is_request:
        ctx.msg.set_ruri(ctx.orig_ruri)
    return True


# ---- forwarding and branches -------------------------------------------------------------
def forward_cfg(ctx: MsgContext, dest: str | None = None, port: int | None = None) -> int:
    """forward(), forward("host"), forward("sip:uri"), forward("host", port)."""
    if dest is None:
        return forward.forward(ctx)
    if ":" in dest and dest.split(":", 1)[0].lower() in ("sip", "sips"):
        target = dest
    else:
        target = f"sip:{dest}"
    if port is not None:
        target += f":{port}"
    return forward.forward_to(ctx, target)


def append_branch(ctx: MsgContext, branch_uri: str | None = None, q: str | None = None) -> int:
    """Add a branch: the given URI, or the current R-URI and $du when called without one; it
    leaves from the socket forced now ($fs), if any. Both parameters may hold variables."""
    if branch_uri is not None and "$" in branch_uri:
        branch_uri = ctx.core.pv.format(branch_uri)(ctx)
    if q is not None and "$" in q:
        q = ctx.core.pv.format(q)(ctx)
    if branch_uri is None:
        if not ctx.msg.is_request:
            return -1
        new = Branch(uri=ctx.msg.ruri, dst_uri=ctx.dst_uri, send_socket=ctx.send_socket)
    else:
        if parse_uri_or_none(branch_uri) is None:
            script_log.error("append_branch: invalid uri %r", branch_uri)
            return -1
        new = Branch(uri=branch_uri, send_socket=ctx.send_socket)
    if q is not None and q != "":
        try:
            new.q = int(round(float(q) * 1000))
        except ValueError:
            script_log.error("append_branch: invalid q value %r", q)
            return -1
    ctx.branches.append(new)
    return 1


def force_send_socket(ctx: MsgContext, socket: str) -> int:
    """Send this message out of socket ``proto:ip:port``."""
    ctx.send_socket = socket
    return 1


def _extra_flag(key: str) -> Callable[[MsgContext], bool]:
    def fn(ctx: MsgContext) -> bool:
        ctx.extra[key] = True
        return True
    return fn


# ---- log ---------------------------------------------------------------------------------
def log_cfg(ctx: MsgContext, a: object, b: str | None = None) -> int:
    """log("text") (debug level) or log(level, "text") with a Kamailio level number."""
    if b is None:
        emit(kamailio_level(3), str(a))
    else:
        try:
            level = int(str(a))
        except ValueError:
            level = -1
        emit(kamailio_level(level), b)
    return 1


def _fn(name: str, func: Callable[..., object], lo: int = 0, hi: int | None = None,
        ints: tuple[int, ...] = ()) -> CfgFunction:
    return CfgFunction("core", name, func, lo, lo if hi is None else hi, ints)  # type: ignore[arg-type]


def _builtins() -> dict[str, CfgFunction]:
    table = [
        _fn("setflag", flags.setflag, 1, ints=(0,)),
        _fn("resetflag", flags.resetflag, 1, ints=(0,)),
        _fn("isflagset", flags.isflagset, 1, ints=(0,)),
        _fn("setbflag", _bflag(flags.setbflag, flags.setbiflag), 1, 2, (0, 1)),
        _fn("resetbflag", _bflag(flags.resetbflag, flags.resetbiflag), 1, 2, (0, 1)),
        _fn("isbflagset", _bflag(flags.isbflagset, flags.isbiflagset), 1, 2, (0, 1)),
        _fn("setsflag", flags.setsflag, 1, ints=(0,)),
        _fn("resetsflag", flags.resetsflag, 1, ints=(0,)),
        _fn("issflagset", flags.issflagset, 1, ints=(0,)),
        _fn("force_rport", forward.force_rport),
        _fn("add_local_rport", forward.add_local_rport),
        _fn("set_forward_close", _extra_flag("forward_close")),
        _fn("set_forward_no_connect", _extra_flag("forward_no_connect")),
        _fn("set_reply_close", _extra_flag("reply_close")),
        _fn("set_reply_no_connect", _extra_flag("reply_no_connect")),
        _fn("set_advertised_address", forward.set_advertised_address, 1),
        _fn("set_advertised_port", forward.set_advertised_port, 1),
        _fn("forward", forward_cfg, 0, 2, (1,)),
        _fn("append_branch", append_branch, 0, 2),
        _fn("force_send_socket", force_send_socket, 1),
        _fn("revert_uri", revert_uri),
        _fn("prefix", prefix, 1),
        _fn("strip", strip, 1, ints=(0,)),
        _fn("strip_tail", strip_tail, 1, ints=(0,)),
        _fn("log", log_cfg, 1, 2),
    ]
    for alias, func in (("seturi", uri.seturi), ("sethost", uri.sethost),
                        ("setuser", uri.setuser), ("setport", setport),
                        ("sethostport", sethostport), ("setuserpass", setuserpass)):
        table.append(_fn(alias, func, 1))
        table.append(_fn("rewrite" + alias[3:], func, 1))
    return {f.name: f for f in table}


#: name -> function; the compiler looks here before the modules' cfg functions.
BUILTINS: dict[str, CfgFunction] = _builtins()
