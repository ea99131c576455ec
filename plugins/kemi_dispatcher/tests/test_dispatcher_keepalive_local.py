"""The socket a keepalive leaves from (``pinger.keepalive_socket``), by the listen sockets,
the destination's address family and a forced socket; what Kamailio 5.6 did when run with the
same listens (a non-loopback address of this host and 127.0.0.1 ports)."""

from __future__ import annotations

import pytest

from kemi_core.api import CoreConfig, ListenAddr
from kemi_core.testing import offline_core
from kemi_dispatcher.pinger import keepalive_socket


@pytest.mark.parametrize(("listens", "dest", "forced", "want"), [
    # Kamailio's default: the first of the family not on the loopback, else the last
    (["127.0.0.1:5060", "192.0.2.2:5062", "127.0.0.1:5064"], "127.0.0.1", "", 5062),
    (["127.0.0.1:5060", "127.0.0.1:5062", "127.0.0.1:5064"], "127.0.0.1", "", 5064),
    (["[::1]:5060", "127.0.0.1:5062", "127.0.0.1:5064"], "[::1]", "", 5060),
    (["127.0.0.1:5062", "127.0.0.1:5064"], "[::1]", "", 5062),  # none of its family
    # the destination's socket= or ds_default_socket, when it is a UDP listen socket
    (["127.0.0.1:5060", "127.0.0.1:5062", "127.0.0.1:5064"], "127.0.0.1",
     "udp:127.0.0.1:5062", 5062),
    (["127.0.0.1:5060", "127.0.0.1:5062"], "127.0.0.1", "udp:127.0.0.1:5099", 5062),
    (["127.0.0.1:5060", "127.0.0.1:5062"], "127.0.0.1", "tcp:127.0.0.1:5060", 5062),
])
def test_the_socket_a_keepalive_leaves_from(listens: list[str], dest: str, forced: str,
                                            want: int) -> None:
    config = CoreConfig(listen=[ListenAddr("udp", host, int(port))
                                for host, port in (lst.rsplit(":", 1) for lst in listens)])
    core, _ = offline_core(config=config)
    assert keepalive_socket(core, dest, forced)[1] == want
