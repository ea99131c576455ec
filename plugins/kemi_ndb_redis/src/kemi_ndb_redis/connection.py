"""The connection to one Redis server, per process, on redis-py.

``modparam("ndb_redis", "server", "name=srv;addr=127.0.0.1;port=6379;db=1;pass=x")`` (or
``unix=/path``) names a server. Each process opens its own connection at its first command
(never one inherited across fork). A command that cannot be sent or answered (Redis down or
restarting, a timeout) fails at once with an error logged, and the next command connects anew,
so a Redis restart costs the commands issued while it was down and nothing else: no retries
that would hold a worker, no dead worker. ``allowed_timeouts``/``disable_time`` stop using a
server for a while after that many failures in a row, in this process only (as Kamailio).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import attrs
import redis
from redis._parsers import _RESP2Parser
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from kemi_core.api import about_to_wait
from kemi_ndb_redis.replies import ErrorReply, Status

log = logging.getLogger("kemi.ndb_redis")


def _extra_pool_options() -> dict[str, Any]:
    """redis-py 7+ watches for server maintenance notices, which needs its RESP3 parser: off,
    as for a hiredis client (ours is RESP2)."""
    try:
        from redis.maint_notifications import MaintNotificationsConfig
    except ImportError:
        return {}
    return {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}


class ServerSpecError(ValueError):
    pass


@attrs.frozen
class ServerSpec:
    name: str
    addr: str = "127.0.0.1"
    port: int = 6379
    unix: str = ""
    db: int = 0
    password: str = ""

    @property
    def where(self) -> str:
        return self.unix or f"{self.addr}:{self.port}"


def parse_server(text: str) -> ServerSpec:
    """``name=srv;addr=...;port=...;db=...;pass=...`` (or ``unix=/path``)."""
    fields: dict[str, str] = {}
    for part in text.split(";"):
        key, eq, value = part.partition("=")
        if not key.strip():
            continue
        if not eq:
            raise ServerSpecError(f"ndb_redis: bad server attribute {part!r}")
        fields[key.strip().lower()] = value.strip()
    unknown = set(fields) - {"name", "addr", "port", "unix", "db", "pass", "sentinel_group",
                             "sentinel_master", "sentinel"}
    if unknown:
        raise ServerSpecError(f"ndb_redis: unknown server attribute(s) {sorted(unknown)}")
    if not fields.get("name"):
        raise ServerSpecError("ndb_redis: a server needs a name")
    try:
        return ServerSpec(fields["name"], fields.get("addr", "127.0.0.1"),
                          int(fields.get("port", "6379")), fields.get("unix", ""),
                          int(fields.get("db", "0")), fields.get("pass", ""))
    except ValueError:
        raise ServerSpecError(f"ndb_redis: bad port or db in {text!r}") from None


class _Parser(_RESP2Parser):
    """redis-py's RESP2 reading, keeping status replies (``+OK``) apart from bulk strings and
    error replies as data, as hiredis gives them to Kamailio."""

    def _read_response(self, disable_decoding: bool = False, timeout: Any = None) -> Any:
        buf = self._buffer
        assert buf is not None
        raw = buf.readline() if timeout is None else buf.readline(timeout=timeout)
        if not raw:
            raise RedisConnectionError("Connection closed by server.")
        kind, rest = raw[:1], raw[1:]
        if kind == b"+":
            return Status(rest)
        if kind == b"-":
            return ErrorReply(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            return buf.read(n) if timeout is None else buf.read(n, timeout=timeout)
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._read_response(disable_decoding, timeout) for _ in range(n)]
        raise InvalidResponse(f"Protocol Error: {raw!r}")


class Server:
    """One configured server as seen by this process."""

    def __init__(self, spec: ServerSpec, connect_timeout: float, cmd_timeout: float,
                 allowed_timeouts: int, disable_time: float, flush_on_reconnect: bool) -> None:
        self.spec = spec
        self.connect_timeout = connect_timeout
        self.cmd_timeout = cmd_timeout
        self.allowed_timeouts = allowed_timeouts
        self.disable_time = disable_time
        self.flush_on_reconnect = flush_on_reconnect
        self._pool: redis.ConnectionPool | None = None
        self._conn: Any = None
        self._conn_pid = 0
        self._failures = 0
        self._disabled_until = 0.0
        self._was_down = False

    def _connection(self) -> Any:
        if self._conn is not None and self._conn_pid == os.getpid():
            return self._conn
        self._conn = None  # made before a fork: the parent's socket, never used here
        if self._pool is None:
            s = self.spec
            kwargs: dict[str, Any] = dict(
                db=s.db, password=s.password or None, socket_timeout=self.cmd_timeout,
                retry=Retry(NoBackoff(), 0), parser_class=_Parser, protocol=2,
                **_extra_pool_options())
            if s.unix:
                kwargs["connection_class"] = redis.UnixDomainSocketConnection
                kwargs["path"] = s.unix
            else:
                kwargs.update(host=s.addr, port=s.port, socket_connect_timeout=self.connect_timeout)
            self._pool = redis.ConnectionPool(**kwargs)
        conn = self._pool.make_connection()
        conn.connect()
        self._conn, self._conn_pid = conn, os.getpid()
        if self._was_down and self.flush_on_reconnect:
            conn.send_command("FLUSHALL")
            conn.read_response()
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:  # a broken socket may fail to close: it is gone either way
                pass

    def available(self, now: float) -> bool:
        return now >= self._disabled_until

    def execute(self, commands: list[list[str]], now: float) -> list[Any] | None:
        """Send ``commands`` (pipelined when several) and read their replies in order; None
        when the server cannot be reached or answer (logged)."""
        about_to_wait()
        try:
            conn = self._connection()
            conn.send_packed_command(conn.pack_commands(commands))
            replies = [conn.read_response(disable_decoding=True) for _ in commands]
        except (RedisConnectionError, RedisTimeoutError, OSError, InvalidResponse) as exc:
            self._failed(exc, now)
            return None
        except (ResponseError, RedisError) as exc:  # AUTH or SELECT refused at connect
            self._failed(exc, now)
            return None
        if self._was_down:
            log.info("ndb_redis: server [%s] (%s) is reachable again", self.spec.name,
                     self.spec.where)
            self._was_down = False
        self._failures = 0
        return replies

    def _failed(self, exc: Exception, now: float) -> None:
        self._drop()
        self._was_down = True
        self._failures += 1
        log.error("ndb_redis: cannot talk to redis server [%s] (%s): %s", self.spec.name,
                  self.spec.where, exc)
        if 0 <= self.allowed_timeouts < self._failures:
            self._disabled_until = now + self.disable_time
            self._failures = 0
            log.error("ndb_redis: server [%s] disabled for %gs", self.spec.name,
                      self.disable_time)

    def close(self) -> None:
        self._drop()
        if self._pool is not None:
            self._pool.disconnect()
