"""WorkerEndpoints.local_address: the listen a transport sends from (what a Via names)."""

from __future__ import annotations

import asyncio

from kemi_core.config.model import ListenAddr
from kemi_core.sip import ParseLimits
from kemi_core.testing.receivers import EventRecorder
from kemi_core.transport.endpoints import WorkerEndpoints


def _endpoints() -> WorkerEndpoints:
    listens = [ListenAddr("udp", "127.0.0.1", 5060), ListenAddr("tcp", "127.0.0.1", 5070),
               ListenAddr("tls", "127.0.0.2", 5061), ListenAddr("tcp", "127.0.0.3", 5080)]
    loop = asyncio.new_event_loop()
    loop.close()  # never started: local_address reads the listens only
    return WorkerEndpoints(loop, listens, EventRecorder(), ParseLimits(), shared=False)


def test_first_listen_of_the_transport_asked_again_and_again() -> None:
    ep = _endpoints()
    for _ in range(2):  # the second time from what was kept
        assert ep.local_address("tcp") == ("127.0.0.1", 5070)
        assert ep.local_address("tls") == ("127.0.0.2", 5061)
        assert ep.local_address("ws") == ("127.0.0.1", 5070)
        assert ep.local_address("wss") == ("127.0.0.2", 5061)
        assert ep.local_address("udp") == ("127.0.0.1", 5060)


def test_a_transport_without_a_listen_gets_the_first_one() -> None:
    ep = _endpoints()
    assert ep.local_address("sctp") == ("127.0.0.1", 5060)
    ep.listens.append(ListenAddr("sctp", "127.0.0.4", 5090))  # not kept: found once it exists
    assert ep.local_address("sctp") == ("127.0.0.4", 5090)
