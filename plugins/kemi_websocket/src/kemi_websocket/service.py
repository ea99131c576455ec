"""The websocket module's state: settings, the record of open WebSocket connections that the
RPCs read (a shared-store table), the RPC requests workers carry out, keepalives, and the
``websocket:closed`` event.

A connection lives in the worker that accepted it; the RPCs run in the main process. ``ws.dump``
reads the shared table (each worker refreshes its connections' "last used" at most once per
``RECORD_EVERY`` seconds); ``ws.close``/``ws.ping``/``ws.pong`` leave a request in a second table
that the owning worker carries out within ``timer_interval`` seconds.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from typing import Any

from kemi_core.api import Core, SharedTable, StreamConnection, pid_alive, shared_store
from kemi_core.sip import parse_datagram
from kemi_websocket.session import WsReader

log = logging.getLogger("kemi.websocket")

MODULE = "websocket"
CONNECTIONS = "websocket:connections"
COMMANDS = "websocket:commands"
#: how often (s) a worker refreshes "last used" of its connections in the shared table
RECORD_EVERY = 1.0
EVENT_CLOSED = "websocket:closed"

#: the message event_route[websocket:closed] runs with ($si, $sp are the peer's)
_CLOSED_MSG = (b"OPTIONS sip:you@kemi.invalid SIP/2.0\r\nVia: SIP/2.0/WS kemi.invalid;"
               b"branch=z9hG4bKwsclosed\r\nFrom: <sip:ws@kemi.invalid>;tag=ws\r\nTo: "
               b"<sip:you@kemi.invalid>\r\nCall-ID: websocket-closed\r\nCSeq: 1 OPTIONS\r\n"
               b"Content-Length: 0\r\n\r\n")


class WebSocketModule:
    def __init__(self, core: Core, params: dict[str, Any]) -> None:
        self.core = core
        self.keepalive_mechanism = int(params["keepalive_mechanism"])
        self.keepalive_timeout = float(params["keepalive_timeout"])
        self.ping_data = str(params["ping_application_data"]).encode()
        self.cors_mode = int(params["cors_mode"])
        self.event_callback = str(params["event_callback"])
        self.timer_interval = max(0.1, float(params["timer_interval"]))
        self.close_wait = max(0.5, float(params["rm_delay_interval"]))
        self.server_header = str(params["server_header"])
        self.max_size = core.config.max_msg_size
        self._enabled: Any = multiprocessing.Value("b", 1, lock=False)
        store = shared_store(core)
        self.records: SharedTable = store.table(CONNECTIONS)
        self.commands: SharedTable = store.table(COMMANDS)
        #: this worker's WebSocket connections by id
        self.local: dict[int, tuple[WsReader, StreamConnection]] = {}
        self._recorded: dict[int, float] = {}

    # ---- switches --------------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return bool(self._enabled.value)

    def set_enabled(self, on: bool) -> None:
        self._enabled.value = 1 if on else 0

    # ---- connection life -------------------------------------------------------------------------
    def opened(self, reader: WsReader, conn: StreamConnection) -> None:
        self.local[conn.conn_id] = (reader, conn)
        self._record(conn, time.time())

    def _record(self, conn: StreamConnection, last_used: float) -> None:
        self.records.put(str(conn.conn_id), {
            "id": conn.conn_id, "pid": os.getpid(), "proto": conn.proto,
            "src_ip": conn.peer[0], "src_port": conn.peer[1],
            "dst_ip": conn.local[0], "dst_port": conn.local[1],
            "last_used": last_used, "state": "OPEN"})
        self._recorded[conn.conn_id] = conn.last_active

    def tick(self, reader: WsReader, conn: StreamConnection, now: float) -> None:
        """From the endpoints' sweep: keepalives and the record's "last used"."""
        mech = self.keepalive_mechanism
        if mech in (1, 2) and now - conn.last_active >= self.keepalive_timeout \
                and now - reader.last_keepalive >= self.keepalive_timeout:
            reader.keepalive(conn, mech)
        seen = self._recorded.get(conn.conn_id)
        if seen is not None and conn.last_active - seen >= RECORD_EVERY:
            self._record(conn, time.time() - (now - conn.last_active))

    def closed(self, reader: WsReader, conn: StreamConnection) -> None:
        self.local.pop(conn.conn_id, None)
        self._recorded.pop(conn.conn_id, None)
        try:
            self.records.delete(str(conn.conn_id))
        except Exception as exc:  # the store may be gone at shutdown
            log.debug("websocket: forgetting connection %d: %s", conn.conn_id, exc)
        ctx = self.core.new_context(parse_datagram(_CLOSED_MSG), conn.rcv())
        ctx.extra["ws_conid"] = conn.conn_id
        self.core.run_event_route(EVENT_CLOSED, ctx, self.event_callback)

    # ---- RPC requests ------------------------------------------------------------------------------
    def request(self, conn_id: int, what: str) -> bool:
        """(main process) Ask the worker owning ``conn_id`` to close/ping/pong it; False when
        no such connection is open."""
        rec = self.records.get(str(conn_id))
        if rec is None or not pid_alive(int(rec.get("pid", 0))):
            return False
        self.commands.put(str(conn_id), what, ttl=30)
        return True

    def carry_out(self) -> None:
        """(worker) Do what the RPCs asked for this worker's connections."""
        if not self.local:
            return
        for key, what in self.commands.items():
            found = self.local.get(int(key)) if key.isdigit() else None
            if found is None:
                continue
            self.commands.delete(key)
            reader, conn = found
            if what == "close":
                reader.close(conn, 1000, "Normal closure")
            elif what in ("ping", "pong"):
                reader.keepalive(conn, 1 if what == "ping" else 2)

    def dump(self, order: str) -> dict[str, Any]:
        now = time.time()
        recs = [r for _, r in self.records.items() if pid_alive(int(r.get("pid", 0)))]
        if order == "used_desc":
            recs.sort(key=lambda r: -r["last_used"])
        elif order == "used_asc":
            recs.sort(key=lambda r: r["last_used"])
        else:
            recs.sort(key=lambda r: int(r["id"]))
        shown = recs[:50]
        conns = {str(r["id"]): (
            f"{r['proto']}:{r['src_ip']}:{r['src_port']} -> {r['proto']}:{r['dst_ip']}:"
            f"{r['dst_port']} (state: {r['state']},  last used {int(now - r['last_used'])}s ago, "
            "sub-protocol: sip)") for r in shown}
        return {"connections": conns,
                "info": {"wscounter": len(recs), "truncated": "yes" if len(recs) > 50 else "no"}}

