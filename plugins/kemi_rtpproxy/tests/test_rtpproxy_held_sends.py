"""rtpproxy's control exchange sends what the worker holds before it waits for the proxy's
answer (about_to_wait): a reply routed before rtpproxy_offer is not held for the exchange.
A real UDP socket on 127.0.0.1 that never answers plays the proxy."""

from __future__ import annotations

import socket
import threading

from kemi_core.testing import one_send_held
from kemi_rtpproxy.nodes import Transport, parse_sock_param


def test_a_held_send_goes_out_before_the_exchange_waits() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        [node] = parse_sock_param(f"udp:127.0.0.1:{silent.getsockname()[1]}")
        transport = Transport(tout=0.2, retr=1)
        with one_send_held() as senders:
            assert transport.command(node, "V") is None  # no answer: waited 0.2 s
            assert senders == [threading.get_ident()]  # sent before, by the caller
        assert silent.recv(100).endswith(b" V")
        transport.close(node)
