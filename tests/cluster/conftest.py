"""The cluster suite: a private PostgreSQL per session, SIP nodes on 127.0.0.x, SIPp at the
edges. Each test builds its nodes from the configs in configs/ (the same files for kemi and for
Kamailio 5.6) and stops them by PID at its end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kemi_core.testing import free_port
from kemi_core.testing.cluster import Node, loopback_available
from kemi_core.testing.sipp import sipp_available

HERE = Path(__file__).parent
CONFIGS = HERE / "configs"
SCENARIOS = HERE / "scenarios"

if not sipp_available():
    pytest.skip("SIPp (sip-tester) is not installed", allow_module_level=True)
if not loopback_available("127.0.0.3"):
    pytest.skip("this machine cannot bind 127.0.0.2/127.0.0.3", allow_module_level=True)

MakeNode = Callable[..., Node]


def script_of(names: tuple[str, ...]) -> str:
    """configs/cluster.lua, then each configs/<name>.lua: one node's routing script."""
    return "\n".join((CONFIGS / f"{n}.lua").read_text() for n in ("cluster", *names))


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[MakeNode]:
    """``make_node(name, engine, ip, kind, scripts=(kind,), **values)``: a Node from
    configs/<kind>.cfg and a script joining configs/cluster.lua and configs/<each>.lua, on a
    free port; stopped at the test's end."""
    nodes: list[Node] = []

    def make(name: str, engine: str, ip: str, kind: str, port: int | None = None,
             scripts: tuple[str, ...] | None = None, **values: object) -> Node:
        node = Node(name, engine, ip, port or free_port(), tmp_path / name,
                    (CONFIGS / f"{kind}.cfg").read_text(), script_of(scripts or (kind,)),
                    {k.upper(): v for k, v in values.items()})
        nodes.append(node)
        return node

    yield make
    for node in reversed(nodes):
        node.stop()
