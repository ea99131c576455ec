"""The kemi pytest plugin (entry point ``pytest11``: installing kemi-core enables it): the
``kemi_router`` fixture runs a kamailio.cfg and its routing script inside the test;
``postgres_server`` (one private PostgreSQL for the session) and ``redis_server`` (a private
Redis for one test) run the databases a module's tests need, skipped where not installed.

    def test_options_answered(kemi_router):
        router = kemi_router("kamailio.cfg", defines={"WITH_KEEPALIVE": None})
        out = router.request(OPTIONS)
        assert out.replies[0].status == 200

See ``kemi_core.testing.router.Router`` for the API and docs/testing-scripts.md for a guide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kemi_core.testing.postgres import PostgresServer
    from kemi_core.testing.redis import RedisServer
    from kemi_core.testing.router import Router

RouterFactory = Callable[..., "Router"]


@pytest.fixture
def kemi_router() -> Iterator[RouterFactory]:
    """``kemi_router(cfg_path, *, defines=None, fail_on_script_error=True) -> Router``: the config
    and its script loaded as ``kemi run`` loads them, in this process, as one worker with no
    sockets and a clock only ``router.advance()`` moves. Each call gives an independent router."""
    from kemi_core.testing.router import Router  # imported when used: pytest loads this early

    made: list[Router] = []

    def make(cfg_path: str | Path, *, defines: Mapping[str, Any] | None = None,
             fail_on_script_error: bool = True) -> Router:
        __tracebackhide__ = True
        router = Router(cfg_path, defines=defines, fail_on_script_error=fail_on_script_error)
        made.append(router)
        return router

    yield make
    for router in made:
        router.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL for the whole test session (``PostgresServer``: initdb into a
    temp dir, its own port, stopped by PID at the end; skipped where it cannot run)."""
    from kemi_core.testing.postgres import session_postgres

    yield from session_postgres()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private Redis for one test (``RedisServer``; skipped where redis-server is not
    installed)."""
    from kemi_core.testing.redis import private_redis

    yield from private_redis()
