"""A cluster on one machine for tests and benchmarks: SIP nodes on loopback addresses
(127.0.0.2, 127.0.0.3 ...) run by kemi or by Kamailio 5.6 from the same kamailio.cfg and Lua
script, a private PostgreSQL (``PostgresServer``) and Redis (``RedisServer``) beside them.

    with PostgresServer() as pg:
        db = location_database(pg)
        proxy = Node("a", "kemi", "127.0.0.2", port, tmp / "a", cfg_text, script_text)
        proxy.start()
        proxy.invites()           # core:rcv_requests_invite, through kamcmd (both engines)
        proxy.stop()

A config template names what differs per node with ``@NAME@`` tokens (``@IP@``, ``@PORT@``,
``@CTL@``, ``@SCRIPT@``, plus what the caller passes); ``@@`` stays as written. Processes are
started in their own session and stopped by PID.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from kemi_core.testing.kamailio import KamailioProcess, kamcmd
from kemi_core.testing.process import KemiProcess

ENGINES = ("kemi", "kamailio")
_TOKEN = re.compile(r"@([A-Z_]+)@")


def render(template: str, values: Mapping[str, object]) -> str:
    """Replace each ``@NAME@`` by ``values[NAME]`` (KeyError names a missing one)."""
    def sub(m: re.Match[str]) -> str:
        return str(values[m.group(1)])
    return _TOKEN.sub(sub, template)


def loopback_available(ip: str) -> bool:
    """Whether this machine can bind ``ip`` (Linux routes all of 127.0.0.0/8 to lo)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((ip, 0))
        except OSError:
            return False
    return True


class Node:
    """One SIP server of the cluster: ``engine`` "kemi" or "kamailio", the same config text."""

    def __init__(self, name: str, engine: str, ip: str, port: int, workdir: Path,
                 cfg_template: str, script: str, values: Mapping[str, object] | None = None
                 ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}")
        self.name, self.engine, self.ip, self.port = name, engine, ip, port
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.ctl_path = workdir / "kemi_ctl"
        self.ctl = f"unix:{self.ctl_path}"
        script_path = workdir / "script.lua"
        script_path.write_text(script)
        self.cfg = workdir / "kamailio.cfg"
        self.cfg.write_text(render(cfg_template, {
            "IP": ip, "PORT": port, "CTL": self.ctl_path, "SCRIPT": script_path,
            **(values or {})}).replace("@@", "@"))
        self.proc: KemiProcess | KamailioProcess | None = None

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    def start(self) -> Node:
        if self.engine == "kemi":
            self.proc = KemiProcess(self.cfg, self.workdir).start()
        else:
            self.proc = KamailioProcess(self.cfg, self.workdir, self.ctl).start()
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
            self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None

    def log(self) -> str:
        return self.proc.log() if self.proc is not None else ""

    def kamcmd(self, *args: str) -> str:
        """A control command through Debian's kamcmd (both engines speak binrpc)."""
        done = kamcmd(self.ctl, *args)
        return done.stdout + done.stderr

    def statistic(self, group: str, name: str) -> int:
        """One statistic (``core``, ``rcv_requests_invite``) read with kamcmd; -1 when absent
        (Kamailio wants the bare name in the request and answers ``group:name = value``)."""
        out = self.kamcmd("stats.get_statistics", name)
        m = re.search(re.escape(f"{group}:{name}") + r"\s*=\s*(\d+)", out)
        return int(m.group(1)) if m else -1

    def invites(self) -> int:
        """INVITEs this node received (retransmissions included)."""
        return self.statistic("core", "rcv_requests_invite")

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def kamailio_cluster_available() -> str | None:
    """Why Kamailio cannot run the cluster configs here, or None when it can."""
    from kemi_core.testing.kamailio import kamailio_available

    needed = ("app_lua.so", "dispatcher.so", "db_postgres.so", "usrloc.so", "registrar.so",
              "ctl.so")
    if not kamailio_available(*needed) or shutil.which("kamcmd") is None:
        return "Kamailio 5.6 with app_lua, dispatcher, db_postgres and kamcmd is not installed"
    return None


def location_database(pg: object, name: str | None = None) -> str:
    """A new database on the PostgresServer ``pg`` with the usrloc, dispatcher and htable tables
    made by ``kemi db init``; returns its db_url."""
    from kemi_core.db import create_tables, open_standalone, tables

    url: str = pg.new_database(name)  # type: ignore[attr-defined]
    db = open_standalone(url)
    try:
        create_tables(db, tables.tables_for(["usrloc", "dispatcher", "htable"]))
    finally:
        db.close()
    return url
