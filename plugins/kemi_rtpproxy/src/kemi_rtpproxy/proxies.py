"""Which rtpproxy takes a command: the sets, each node's state, the version test.

A node's state (enabled, or disabled until a time, or disabled by ``rtpproxy.enable``) lives in
the shared store, so a node found dead by one worker is skipped by all until it is due to be
tested again (``rtpproxy_disable_tout``).
"""

from __future__ import annotations

import logging
from typing import Any

from kemi_core.api import Core, SharedTable, shared_store
from kemi_rtpproxy import protocol
from kemi_rtpproxy.nodes import Node, Transport, pick

log = logging.getLogger("kemi.rtpproxy")

STATE_TABLE = "rtpproxy:nodes"
#: ``recheck`` of a node disabled by the RPC: never tested again until enabled.
FOREVER = float("inf")


class Proxies:
    """Every configured node, by set id."""

    def __init__(self, core: Core, sets: dict[int, list[Node]], transport: Transport,
                 disable_tout: float) -> None:
        self.core = core
        self.sets = sets
        self.transport = transport
        self.disable_tout = disable_tout
        self.state: SharedTable = shared_store(core).table(STATE_TABLE)

    def nodes(self) -> list[Node]:
        return [n for nodes in self.sets.values() for n in nodes]

    # ---- state ----------------------------------------------------------------------------
    def disabled(self, node: Node) -> dict[str, Any] | None:
        return self.state.get(node.url)  # type: ignore[no-any-return]

    def disable(self, node: Node, until: float | None = None) -> None:
        recheck = self.core.clock.wall() + self.disable_tout if until is None else until
        self.state.put(node.url, {"recheck": recheck})

    def enable(self, node: Node) -> None:
        self.state.delete(node.url)

    def usable(self, node: Node) -> bool:
        """Enabled, or disabled and due for a new test that it passes."""
        st = self.disabled(node)
        if st is None:
            return True
        if self.core.clock.wall() < st["recheck"]:
            return False
        return self.test(node)

    def test(self, node: Node) -> bool:
        """``V`` and the capabilities (``VF``); the node is enabled or disabled by the result."""
        version = self.transport.command(node, "V")
        if version is None:
            log.warning("can't get version of the RTP proxy <%s>", node.url)
        elif version.strip() != protocol.BASE_VERSION:
            log.warning("unsupported version of RTP proxy <%s> found: %s supported, %s present",
                        node.url, protocol.BASE_VERSION, version.strip())
            version = None
        if version is None:
            log.warning("support for RTP proxy <%s> has been disabled temporarily", node.url)
            self.disable(node)
            return False
        for cap in protocol.CAPABILITIES:
            reply = self.transport.command(node, f"VF {cap}")
            node.caps[cap] = reply is not None and reply.strip() == "1"
        log.info("rtp proxy <%s> found, support for it enabled", node.url)
        self.enable(node)
        return True

    def test_all(self) -> None:
        """At a worker's start: every node not disabled by the RPC."""
        for node in self.nodes():
            st = self.disabled(node)
            if st is None or st["recheck"] != FOREVER:
                self.test(node)

    # ---- commands -------------------------------------------------------------------------
    def node_for(self, set_id: int, callid: str) -> Node | None:
        """The node a call's commands go to (None: no node of the set is available)."""
        for node in pick(self.sets.get(set_id, []), callid):
            if self.usable(node):
                return node
        return None

    def send(self, node: Node, command: str) -> str | None:
        """The node's reply, or None (the node is then disabled)."""
        reply = self.transport.command(node, command)
        if reply is None:
            log.error("proxy <%s> does not respond, disable it", node.url)
            self.disable(node)
        return reply
