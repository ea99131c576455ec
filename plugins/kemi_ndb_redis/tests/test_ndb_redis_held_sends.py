"""ndb_redis sends what the worker holds before it waits for Redis (about_to_wait): a reply
routed before redis_cmd is not held for the command. A real TCP listener on 127.0.0.1 that
accepts and never answers plays a stuck Redis."""

from __future__ import annotations

import socket
import threading
import time

from kemi_core.testing import one_send_held
from kemi_ndb_redis.connection import Server, ServerSpec


def test_a_held_send_goes_out_before_the_command_waits() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as stuck:
        stuck.bind(("127.0.0.1", 0))
        stuck.listen()
        spec = ServerSpec("s", "127.0.0.1", stuck.getsockname()[1])
        server = Server(spec, connect_timeout=1.0, cmd_timeout=0.2, allowed_timeouts=0,
                        disable_time=0, flush_on_reconnect=False)
        with one_send_held() as senders:
            assert server.execute([["GET", "k"]], time.monotonic()) is None  # timed out
            assert senders == [threading.get_ident()]  # sent before, by the caller
        server.close()
