"""Redis restarted under load, on kemi and on Kamailio 5.6 with the same config: two proxies
count every call in one Redis (ndb_redis) while SIPp calls through them; Redis stops and starts
again in the middle. Every call completes; while Redis is down the scripts' Redis commands fail
(logged, no dead worker); after it is back they count again."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from kemi_core.testing import free_port, wait_until
from kemi_core.testing.cluster import kamailio_cluster_available, location_database
from kemi_core.testing.kamailio import kamailio_available
from kemi_core.testing.sipp import SippUas, run_sipp

SCENARIOS = Path(__file__).parent / "scenarios"
REASON = kamailio_cluster_available() or (
    None if kamailio_available("ndb_redis.so") else "Kamailio's ndb_redis is not installed")
ENGINES = ["kemi", pytest.param("kamailio", marks=pytest.mark.skipif(REASON is not None,
                                                                      reason=REASON or ""))]
CALLS, RATE = 120, 20


def calls_counted(redis: Any) -> int:
    reply = redis.command("GET", "calls")
    return int(reply.split(b"\r\n")[1]) if reply.startswith(b"$") and b"$-1" not in reply else 0


@pytest.mark.parametrize("engine", ENGINES)
def test_redis_restart_under_load(engine: str, make_node: Any, postgres_server: Any,
                                  redis_server: Any, tmp_path: Path) -> None:
    url = location_database(postgres_server)
    proxies = [make_node(n, engine, ip, "redis", scripts=("proxy", "redis"), db_url=url, server_id=i + 1,
                         redis_port=redis_server.port).start()
               for i, (n, ip) in enumerate((("a", "127.0.0.2"), ("b", "127.0.0.3")))]
    with SippUas(tmp_path, free_port(), scenario=SCENARIOS / "uas.xml") as uas:
        reg = run_sipp(proxies[0].address, tmp_path, scenario=SCENARIOS / "register.xml",
                       calls=1, name="reg", extra=["-s", "bob", "-key", "contact",
                                                   f"sip:bob@127.0.0.1:{uas.port}",
                                                   "-key", "expires", "3600"])
        assert reg.successful == 1, reg.stdout[-2000:]
        results: dict[str, Any] = {}

        def load(i: int, node: Any) -> None:
            results[node.name] = run_sipp(node.address, tmp_path,
                                          scenario=SCENARIOS / "uac_call.xml", calls=CALLS // 2,
                                          rate=RATE // 2, name=f"load{i}", extra=["-s", "bob"])

        threads = [threading.Thread(target=load, args=(i, n)) for i, n in enumerate(proxies)]
        for t in threads:
            t.start()
        wait_until(lambda: calls_counted(redis_server) >= 20, 30, "calls counted in Redis")
        redis_server.stop()
        wait_until(lambda: all("redis" in n.log().lower() and "unavailable" in n.log()
                               for n in proxies), 30, "both proxies fail to count")
        redis_server.start()
        wait_until(lambda: calls_counted(redis_server) >= 5, 30, "counting again after restart")
        for t in threads:
            t.join(120)
    for name, res in results.items():
        assert res.successful == CALLS // 2 and res.failed == 0, f"{name}:\n{res.stdout[-2000:]}"
