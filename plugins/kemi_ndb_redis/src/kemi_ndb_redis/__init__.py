"""ndb_redis.so: Redis commands from routing scripts (Kamailio's ndb_redis, on redis-py).

``modparam("ndb_redis", "server", "name=srv;addr=127.0.0.1;port=6379;db=1;pass=secret")``
(repeat for several servers; ``unix=/path`` for a socket). A script sends a command and reads
the reply later through ``$redis(reply=>key)``::

    KSR.ndb_redis.redis_cmd("srv", "INCR calls:" .. KSR.pv.get("$fU"), "r")
    local n = KSR.pv.get("$redis(r=>value)")

The command string is split on white space; each ``%s`` takes the next extra parameter whole
(spaces kept): ``redis_cmd_p1("srv", "GET %s", "a key", "r")``. Reply keys: ``type`` (1 string,
2 array, 3 integer, 4 nil, 5 status, 6 error), ``value``, ``info``, ``size``, ``type[n]``,
``value[n]`` (and ``value[n]=>key`` inside nested arrays). Replies are kept per process until
``redis_free`` or the next command with the same reply name.

Return codes are Kamailio 5.6's: the KEMI functions return 0 when Redis answered (1 from native
routes), -1 when it answered an error (the reply holds it) or could not be reached (the reply is
dropped; one error is logged per failed command), -2 while a server is disabled
(``allowed_timeouts``). Redis being restarted costs the commands sent while it is down: the next
command connects again; no worker waits longer than ``connect_timeout``/``cmd_timeout`` (ms).
Native routes also have ``redis_pipe_cmd`` and ``redis_execute`` (pipelining).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kemi_core.api import (
    CfgFunction,
    Core,
    KemiExport,
    ModuleError,
    MsgContext,
    PvValue,
    export,
    hookimpl,
)
from kemi_ndb_redis.connection import Server, ServerSpecError, parse_server
from kemi_ndb_redis.replies import ERROR, Reply, lookup, parse_path

log = logging.getLogger("kemi.ndb_redis")

MODULE = "ndb_redis"

PARAMS: tuple[tuple[str, int, str], ...] = (
    ("init_without_redis", 0, "1: start even when a server cannot be reached"),
    ("connect_timeout", 1000, "ms to wait for a connection"),
    ("cmd_timeout", 1000, "ms to wait for a reply"),
    ("cluster", 0, "accepted (Redis Cluster redirections are not followed)"),
    ("allowed_timeouts", -1, "failures in a row before a server is disabled (-1: never)"),
    ("disable_time", 0, "seconds a disabled server stays disabled"),
    ("flush_on_reconnect", 0, "FLUSHALL after reconnecting"),
    ("allow_dynamic_nodes", 0, "accepted"),
    ("debug", 0, "accepted"),
)


class _State:
    core: Core | None = None
    servers: dict[str, Server] = {}
    #: reply containers of this process, by reply name
    replies: dict[str, Reply] = {}
    #: redis_pipe_cmd: commands waiting for redis_execute, by server: (args, reply name)
    pipes: dict[str, list[tuple[list[str], str]]] = {}


_st = _State()


def build_args(command: str, params: list[str]) -> list[str]:
    """The command's words, each ``%s`` replaced by the next parameter (``%%`` is ``%``)."""
    args: list[str] = []
    rest = iter(params)
    for word in command.split():
        out: list[str] = []
        i = 0
        while i < len(word):
            if word.startswith("%s", i):
                out.append(next(rest, ""))
                i += 2
            elif word.startswith("%%", i):
                out.append("%")
                i += 2
            else:
                out.append(word[i])
                i += 1
        args.append("".join(out))
    return args


def _server(name: str) -> Server | None:
    srv = _st.servers.get(name)
    if srv is None:
        log.error("ndb_redis: no redis server named [%s]", name)
    return srv


def _now() -> float:
    core = _st.core
    return core.clock.now() if core is not None else 0.0


def run_command(srvname: str, command: str, params: list[str], replyid: str) -> int:
    """Send one command; 1 answered, -1 error reply or unreachable, -2 server disabled."""
    srv = _server(srvname)
    if srv is None:
        return -1
    if _st.pipes.get(srvname):
        log.warning("ndb_redis: pipelined commands for [%s] sent before redis_cmd", srvname)
        execute(srvname)
    now = _now()
    if not srv.available(now):
        _st.replies.pop(replyid, None)
        return -2
    args = build_args(command, params)
    if not args:
        log.error("ndb_redis: empty command")
        return -1
    replies = srv.execute([args], now)
    if replies is None:
        _st.replies.pop(replyid, None)
        return -1
    reply = Reply.of(replies[0])
    _st.replies[replyid] = reply
    if reply.type == ERROR:
        log.error("ndb_redis: redis error: %s", reply.value)
        return -1
    return 1


def pipe_command(srvname: str, command: str, params: list[str], replyid: str) -> int:
    if _server(srvname) is None:
        return -1
    args = build_args(command, params)
    if not args:
        return -1
    _st.pipes.setdefault(srvname, []).append((args, replyid))
    return 1


def execute(srvname: str) -> int:
    """Send the pipelined commands of ``srvname`` at once; each reply to its own name."""
    srv = _server(srvname)
    queued = _st.pipes.pop(srvname, [])
    if srv is None:
        return -1
    if not queued:
        return 1
    now = _now()
    if not srv.available(now):
        return -2
    replies = srv.execute([args for args, _ in queued], now)
    if replies is None:
        for _, name in queued:
            _st.replies.pop(name, None)
        return -1
    rc = 1
    for (_, name), raw in zip(queued, replies, strict=True):
        reply = Reply.of(raw)
        _st.replies[name] = reply
        if reply.type == ERROR:
            log.error("ndb_redis: redis error: %s", reply.value)
            rc = -1
    return rc


def free_reply(replyid: str) -> int:
    return 1 if _st.replies.pop(replyid, None) is not None else -1


# ---- KEMI (Kamailio 5.6 returns 0 on success from these) ------------------------------------
def redis_cmd(ctx: MsgContext, srv: str, rcmd: str, sres: str) -> int:
    """Send command ``rcmd`` to server ``srv``; the reply goes to ``$redis(sres=>...)``.
    0 when Redis answered, -1 on an error reply or no connection, -2 server disabled."""
    return _kemi(run_command(srv, rcmd, [], sres))


def redis_cmd_p1(ctx: MsgContext, srv: str, rcmd: str, p1: str, sres: str) -> int:
    """redis_cmd() with one ``%s`` parameter (taken whole, spaces included)."""
    return _kemi(run_command(srv, rcmd, [p1], sres))


def redis_cmd_p2(ctx: MsgContext, srv: str, rcmd: str, p1: str, p2: str, sres: str) -> int:
    """redis_cmd() with two ``%s`` parameters."""
    return _kemi(run_command(srv, rcmd, [p1, p2], sres))


def redis_cmd_p3(ctx: MsgContext, srv: str, rcmd: str, p1: str, p2: str, p3: str,
                 sres: str) -> int:
    """redis_cmd() with three ``%s`` parameters."""
    return _kemi(run_command(srv, rcmd, [p1, p2, p3], sres))


def redis_free(ctx: MsgContext, sres: str) -> int:
    """Forget the reply ``sres``: 1, or -1 when there is none."""
    return free_reply(sres)


def _kemi(rc: int) -> int:
    return 0 if rc > 0 else rc


def exports() -> list[KemiExport]:
    return [
        export(MODULE, "redis_cmd", redis_cmd, "sss"),
        export(MODULE, "redis_cmd_p1", redis_cmd_p1, "ssss"),
        export(MODULE, "redis_cmd_p2", redis_cmd_p2, "sssss"),
        export(MODULE, "redis_cmd_p3", redis_cmd_p3, "ssssss"),
        export(MODULE, "redis_free", redis_free, "s"),
    ]


# ---- native routes --------------------------------------------------------------------------
def _fmt(ctx: MsgContext, text: str) -> str:
    return ctx.core.pv.format(text)(ctx) if "$" in text else text


def _cfg_cmd(sender: Callable[[str, str, list[str], str], int]) -> Callable[..., int]:
    def run(ctx: MsgContext, srv: str, cmd: str, *rest: str) -> int:
        *params, replyid = rest
        return sender(_fmt(ctx, srv), _fmt(ctx, cmd), [_fmt(ctx, p) for p in params],
                      _fmt(ctx, replyid))
    return run


CFG_FUNCTIONS: tuple[tuple[str, Callable[..., int], int, int], ...] = (
    ("redis_cmd", _cfg_cmd(run_command), 3, 6),
    ("redis_pipe_cmd", _cfg_cmd(pipe_command), 3, 6),
    ("redis_execute", lambda ctx, srv: execute(_fmt(ctx, srv)), 1, 1),
    ("redis_free", lambda ctx, name: free_reply(_fmt(ctx, name)), 1, 1),
)


def redis_pv(ctx: MsgContext, arg: tuple[str, list[tuple[str, int | None]]]) -> PvValue:
    name, steps = arg
    value = lookup(_st.replies.get(name), steps)
    return value if value is None or isinstance(value, int | str) else str(value)


# ---- hooks ----------------------------------------------------------------------------------
@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "server", str, multi=True,
                       doc="a server: name=...;addr=...;port=...;db=...;pass=... (repeatable)")
    for name, default, doc in PARAMS:
        core.declare_param(MODULE, name, int, default, doc=doc)
    for name, func, lo, hi in CFG_FUNCTIONS:
        core.add_cfg_function(CfgFunction(MODULE, name, func, lo, hi))
    core.pv.register("redis", redis_pv, takes_arg=True, parse_arg=parse_path, replace=True,
                     doc="$redis(reply=>type|value|info|size|type[n]|value[n]): a Redis reply")


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    p = lambda name: int(core.modparam(MODULE, name))  # noqa: E731
    servers: dict[str, Server] = {}
    for text in core.modparam(MODULE, "server"):
        try:
            spec = parse_server(str(text))
        except ServerSpecError as exc:
            raise ModuleError(str(exc)) from None
        if spec.name in servers:
            raise ModuleError(f"ndb_redis: server [{spec.name}] is defined twice")
        servers[spec.name] = Server(spec, p("connect_timeout") / 1000.0, p("cmd_timeout") / 1000.0,
                                    p("allowed_timeouts"), float(p("disable_time")),
                                    bool(p("flush_on_reconnect")))
    if not servers:
        raise ModuleError('ndb_redis: no server: modparam("ndb_redis", "server", '
                          '"name=...;addr=...;port=...")')
    if not p("init_without_redis"):
        for srv in servers.values():
            if srv.execute([["PING"]], core.clock.now()) is None:
                raise ModuleError(f"ndb_redis: cannot connect to redis server [{srv.spec.name}] "
                                  f"({srv.spec.where}) (init_without_redis is 0)")
            srv.close()  # each process opens its own connection at its first command
    _st.core = core
    _st.servers = servers
    _st.replies = {}
    _st.pipes = {}


@hookimpl
def mod_destroy() -> None:
    for srv in _st.servers.values():
        srv.close()


