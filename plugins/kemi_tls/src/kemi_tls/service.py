"""The tls module's state: the profiles in force, their contexts, tls.reload across workers,
and the record of open TLS connections (tls.list, tls.info).

The main process loads and checks the profiles at start and at each ``tls.reload``; a reload
bumps a generation number in shared memory (made before the fork) and each worker rebuilds its
contexts from the files at its next new TLS connection. Connections already open keep their
session, as in Kamailio.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import ssl
import time
from typing import Any

from kemi_core.api import (
    ConfigError,
    Core,
    SharedTable,
    StreamConnection,
    pid_alive,
    shared_store,
)
from kemi_tls import certinfo
from kemi_tls.contexts import FILE_ATTRS, Contexts
from kemi_tls.profiles import ProfileSet, complete, parse_text

log = logging.getLogger("kemi.tls")

MODULE = "tls"
CONN_TABLE = "tls:connections"


#: What a tls.cfg profile leaves unset, as Kamailio 5.6 does it: its own values, not the module
#: parameters (ignored once a tls.cfg is used); a server profile without a certificate reads
#: cert.pem beside the main config file (also its private key).
FILE_DEFAULTS: dict[str, object] = {"tls_method": "SSLv23", "verify_certificate": False,
                                    "require_certificate": False, "verify_depth": 9}
DEFAULT_CERT = "cert.pem"


def resolve(path: str, cfg_file: str) -> str:
    """Kamailio's rule for tls file names: ``/...`` absolute, ``./...`` from the working
    directory, anything else beside the main config file."""
    if not path or os.path.isabs(path) or path.startswith("."):
        return path
    return os.path.join(os.path.dirname(os.path.abspath(cfg_file)), path)


class TlsModule:
    """What the transport asks for (``TlsService``) and what the RPCs and variables read."""

    def __init__(self, core: Core, defaults: dict[str, object], config_path: str,
                 handshake_timeout: float) -> None:
        self.core = core
        self.defaults = defaults
        self.config_path = config_path
        self.handshake_timeout = handshake_timeout
        self.servers = any(lst.proto == "tls" for lst in core.config.listen)
        self.contexts = Contexts(self.load_profiles(), self.servers)
        self._generation: Any = multiprocessing.Value("i", 0, lock=False)
        self._seen = 0
        #: tls_set_connect_server_id(): the client profile of the next connection we open
        self.next_server_id: str | None = None
        self.table: SharedTable | None = None

    # ---- profiles -----------------------------------------------------------------------------
    def load_profiles(self) -> ProfileSet:
        """Read tls.cfg (a file, or every file of a directory) and complete its profiles with
        Kamailio's values (``FILE_DEFAULTS``); without a tls.cfg the module parameters make the
        default profiles. ConfigError with file:line on any problem."""
        cfg = self.core.config.source
        if not self.config_path:
            return complete([], {k: (resolve(v, cfg) if isinstance(v, str) and k in FILE_ATTRS
                                     else v) for k, v in self.defaults.items()})
        profiles = []
        path = resolve(self.config_path, cfg)
        files = ([os.path.join(path, f) for f in sorted(os.listdir(path))]
                 if os.path.isdir(path) else [path])
        for name in files:
            try:
                with open(name, encoding="utf-8") as fh:
                    text = fh.read()
            except OSError as exc:
                raise ConfigError(f"tls config {name}: {exc.strerror}", cfg) from None
            profiles += parse_text(text, name)
        for prof in profiles:
            for key in FILE_ATTRS:
                value = prof.attrs.get(key)
                if isinstance(value, str):
                    prof.attrs[key] = resolve(value, cfg)
        found = complete(profiles, FILE_DEFAULTS)
        for prof in found.server:
            prof.attrs.setdefault("certificate", resolve(DEFAULT_CERT, cfg))
        return found

    def reload(self) -> None:
        """tls.reload in the main process: the new profiles are checked here; on error the old
        ones stay and the error is raised."""
        if not self.config_path:
            raise ConfigError("No TLS configuration file configured")
        self.contexts = Contexts(self.load_profiles(), self.servers)
        self._generation.value += 1
        self._seen = self._generation.value

    def _follow(self) -> Contexts:
        """In a worker: rebuild the contexts after a tls.reload in the main process."""
        gen = self._generation.value
        if gen != self._seen:
            self._seen = gen
            try:
                self.contexts = Contexts(self.load_profiles(), self.servers)
                log.info("tls: configuration reloaded (generation %d)", gen)
            except ConfigError as exc:
                log.error("tls: reload failed in this worker, old profiles kept: %s", exc)
        return self.contexts

    # ---- TlsService ---------------------------------------------------------------------------
    def server_context(self, local: tuple[str, int]) -> ssl.SSLContext:
        return self._follow().server_context(local)

    def client_context(self, remote: tuple[str, int]) -> tuple[ssl.SSLContext, str | None]:
        server_id, self.next_server_id = self.next_server_id, None
        return self._follow().client_context(remote, server_id)

    def opened(self, conn: StreamConnection) -> None:
        if self.table is None:
            return
        tls = conn.tls
        assert tls is not None
        self.table.put(str(conn.conn_id), {
            "id": conn.conn_id, "pid": os.getpid(), "opened": time.time(),
            "src_ip": conn.peer[0], "src_port": conn.peer[1],
            "dst_ip": conn.local[0], "dst_port": conn.local[1],
            "cipher": self.describe_cipher(conn), "version": tls.version,
            "server_side": conn.server_side})

    def closed(self, conn: StreamConnection) -> None:
        if self.table is not None:
            self.table.delete(str(conn.conn_id))

    # ---- for variables and RPCs ---------------------------------------------------------------
    def describe_cipher(self, conn: StreamConnection) -> str | None:
        tls = conn.tls
        if tls is None or tls.cipher is None:
            return None
        name, version, _ = tls.cipher
        line = certinfo.cipher_description(tls.obj.context, name)
        return line if line != name else f"{name} {version}"

    def certificate_of(self, conn: StreamConnection) -> str | None:
        """The certificate file this side of ``conn`` presented."""
        if conn.tls is None:
            return None
        prof = self.contexts.profile_of.get(id(conn.tls.obj.context))
        value = prof.get("certificate") if prof is not None else None
        return str(value) if value else None

    def start_bookkeeping(self) -> None:
        """In the main process, before the fork: the shared table tls.list reads."""
        self.table = shared_store(self.core).table(CONN_TABLE)

    def connections(self) -> list[dict[str, Any]]:
        if self.table is None:
            return []
        alive = []
        for _, rec in self.table.items():
            if pid_alive(int(rec.get("pid", 0))):
                alive.append(rec)
        return sorted(alive, key=lambda r: int(r["id"]))

