"""db_postgres.so: PostgreSQL for ``db_url`` ``postgres://user:pass@host:port/db`` (psycopg 3;
``postgresql://`` too).

Each process opens its own connection at its first call (autocommit; psycopg prepares a
statement once it has run a few times). Calls are bounded: ``timeout`` is the statement timeout
(the server cancels a longer statement) and, for TCP, the time unacknowledged data may wait;
``connect_timeout`` bounds one connection attempt. A connection lost between calls is
reconnected once at once (PostgreSQL restarted); a database that stays unreachable makes calls
fail at once until the next attempt, with a back-off from ``retry_interval`` doubling up to
``retry_max_interval``.

Parameters: ``timeout`` (s, default 3), ``connect_timeout`` (s, default 2; libpq's minimum is
2), ``con_param`` (Kamailio's ``"key=value;key=value"``: more libpq connection settings),
``retry_interval`` / ``retry_max_interval`` (ms, defaults 1000 / 10000), and Kamailio's
``retries`` (accepted; kemi retries once at once, then backs off).
"""

from __future__ import annotations

from kemi_core.api import Core, db, hookimpl
from kemi_db_postgres.backend import MODULE, PostgresBackend, registered_cores

__all__ = ["MODULE", "PostgresBackend"]


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "timeout", int, 3, doc="statement timeout (seconds)")
    core.declare_param(MODULE, "connect_timeout", int, 2, doc="connection attempt timeout (s)")
    core.declare_param(MODULE, "con_param", str, "", doc="libpq settings: key=value;key=value")
    core.declare_param(MODULE, "retries", int, 2, doc="accepted for Kamailio configs")
    PostgresBackend.declare_retry_params(core)
    db.register_backend(core, PostgresBackend(core))


@hookimpl
def mod_destroy() -> None:
    for core in registered_cores():
        db.close_all(core)
