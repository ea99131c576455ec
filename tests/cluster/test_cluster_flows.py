"""The cluster goals end to end, on kemi and on Kamailio 5.6 with the same configs and Lua
scripts: a dispatcher on 127.0.0.1 in front of two registrar proxies on 127.0.0.2 and 127.0.0.3
sharing the PostgreSQL location table (usrloc db_mode 3); SIPp registers, calls and answers.

- register through proxy A, call through proxy B: the call reaches the user;
- 20 calls through the dispatcher spread over both proxies;
- proxy B stopped: the next 20 calls all complete (failover, then keepalives keep B out);
- B started again: keepalives bring it back and calls spread again;
- unregister through B: a call through A gets 404.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kemi_core.testing import free_port, wait_until
from kemi_core.testing.cluster import Node, kamailio_cluster_available, location_database
from kemi_core.testing.sipp import SippUas, run_sipp

HERE = Path(__file__).parent
SCENARIOS = HERE / "scenarios"
USER = "bob"


def engines() -> list[Any]:
    reason = kamailio_cluster_available()
    return ["kemi", pytest.param("kamailio", marks=pytest.mark.skipif(
        reason is not None, reason=reason or ""))]


class Cluster:
    def __init__(self, dispatcher: Node, a: Node, b: Node, uas: SippUas, workdir: Path) -> None:
        self.dispatcher, self.a, self.b, self.uas, self.workdir = dispatcher, a, b, uas, workdir
        self.contact = f"sip:{USER}@127.0.0.1:{uas.port}"
        self._runs = 0

    def sipp(self, target: Node, scenario: str, calls: int = 1, rate: float = 10,
             keys: dict[str, str] | None = None, timeout: float = 60) -> Any:
        self._runs += 1
        extra = ["-s", USER]
        for k, v in (keys or {}).items():
            extra += ["-key", k, v]
        return run_sipp(target.address, self.workdir, scenario=SCENARIOS / scenario,
                        calls=calls, rate=rate, extra=extra, timeout=timeout,
                        name=f"sipp{self._runs}")

    def register(self, via: Node, expires: int = 3600) -> None:
        res = self.sipp(via, "register.xml", keys={"contact": self.contact,
                                                   "expires": str(expires)})
        assert res.successful == 1, f"REGISTER through {via.name} failed:\n{res.stdout[-2000:]}"

    def calls(self, via: Node, n: int, scenario: str = "uac_call.xml") -> Any:
        return self.sipp(via, scenario, calls=n, rate=10)

    def ds_flags(self) -> dict[str, str]:
        out = self.dispatcher.kamcmd("dispatcher.list")
        return dict(re.findall(r"URI:\s*(\S+)\s+FLAGS:\s*(\w+)", out))

    def state_of(self, node: Node) -> str:
        return self.ds_flags().get(f"sip:{node.address}", "?")


@pytest.fixture(params=engines())
def cluster(request: Any, make_node: Any, postgres_server: Any, tmp_path: Path
            ) -> Iterator[Cluster]:
    engine = request.param
    url = location_database(postgres_server)
    a = make_node("a", engine, "127.0.0.2", "proxy", db_url=url, server_id=1)
    b = make_node("b", engine, "127.0.0.3", "proxy", db_url=url, server_id=2)
    ds_list = tmp_path / "dispatcher.list"
    ds_list.write_text(f"1 sip:{a.address} 0 0\n1 sip:{b.address} 0 0\n")
    d = make_node("d", engine, "127.0.0.1", "dispatcher", list=ds_list)
    for node in (a, b, d):
        node.start()
    uas = SippUas(tmp_path, free_port(), scenario=SCENARIOS / "uas.xml").start()
    try:
        c = Cluster(d, a, b, uas, tmp_path)
        wait_until(lambda: set(c.ds_flags().values()) == {"AP"}, 15,
                   lambda: f"both proxies up in the dispatcher: {c.ds_flags()}")
        yield c
    finally:
        uas.stop()


def test_register_through_a_call_through_b(cluster: Cluster) -> None:
    cluster.register(cluster.a)
    res = cluster.calls(cluster.b, 1)
    assert res.successful == 1, res.stdout[-2000:]
    assert cluster.b.invites() >= 1 and cluster.a.invites() == 0


def test_dispatcher_spreads_fails_over_and_recovers(cluster: Cluster) -> None:
    c = cluster
    c.register(c.a)
    res = c.calls(c.dispatcher, 20)
    assert res.successful == 20 and res.failed == 0, res.stdout[-2000:]
    a1, b1 = c.a.invites(), c.b.invites()
    assert a1 >= 5 and b1 >= 5, f"20 calls spread as A={a1} B={b1}"

    c.b.stop()
    stopped = time.monotonic()
    res = c.calls(c.dispatcher, 20)
    assert res.successful == 20 and res.failed == 0, res.stdout[-2000:]
    assert c.a.invites() - a1 >= 20
    wait_until(lambda: c.state_of(c.b).startswith("I"), 10, lambda: f"B down: {c.ds_flags()}")
    print(f"B stopped: 20 calls done and B inactive {time.monotonic() - stopped:.1f}s later")

    c.b.start()
    restarted = time.monotonic()
    wait_until(lambda: c.state_of(c.b) == "AP", 15, lambda: f"B back: {c.ds_flags()}")
    print(f"B started: active again after {time.monotonic() - restarted:.1f}s")
    a2 = c.a.invites()
    res = c.calls(c.dispatcher, 20)
    assert res.successful == 20 and res.failed == 0, res.stdout[-2000:]
    a3, b3 = c.a.invites() - a2, c.b.invites()
    assert a3 >= 5 and b3 >= 5, f"20 calls after B's return spread as A={a3} B={b3}"

    c.register(c.b, expires=0)
    res = c.calls(c.a, 1, "uac_404.xml")
    assert res.successful == 1, res.stdout[-2000:]
