"""Live reload across worker processes: the main process validates, every worker follows.

The RPC ``cfgengine.reload`` (and ``app_lua.reload``, ``app_python.reload``, ``cfg.reload``,
which share it) calls ``core.reload_engine()``: :class:`EngineReload` below.

A reload RPC runs in the main process (the control socket lives there). It reads the new script
or config ONCE, checks it by loading it there, and publishes exactly those bytes as a new
generation. Each worker compares the generation (one int in shared memory, made before fork) at
the start of its next request or reply route, and loads the published bytes, never the file:
the file may have changed again since, and a worker must not pick up an unchecked version.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import secrets
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kemi_core.engine import Engine, EngineSpec
    from kemi_core.runtime.core import Core

log = logging.getLogger("kemi.reload")


class ReloadChannel:
    """Generation counter + the published payload of each generation (files in a private dir)."""

    def __init__(self, name: str) -> None:
        self.name = name
        #: the generation, one int in shared memory (``cell.value``; read before each message)
        self.cell: Any = multiprocessing.Value("i", 0, lock=False)
        # The payloads' directory is named now (the workers forked later must know it) and
        # made at the first publish: most servers never reload, and a server killed without
        # its shutdown leaves nothing behind. The name's random part keeps it unguessable,
        # and mkdir (0700, never an existing one) keeps it ours.
        self._dir = os.path.join(tempfile.gettempdir(),
                                 f"kemi-reload-{name}-{os.getpid()}-{secrets.token_hex(8)}")
        self._made = False
        self._owner = os.getpid()

    @property
    def generation(self) -> int:
        return int(self.cell.value)

    #: The Counter protocol engines read (``value`` is the generation).
    value = generation

    def publish(self, payload: bytes) -> int:
        """Make ``payload`` the current version for every worker; returns its generation."""
        gen = self.generation + 1
        if not self._made:
            os.mkdir(self._dir, 0o700)
            self._made = True
            atexit.register(self.close)  # a process that never shuts its server down cleanly
        tmp = os.path.join(self._dir, f".{gen}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, os.path.join(self._dir, str(gen)))
        self.cell.value = gen  # last: a worker never sees a generation without its file
        return gen

    def changed(self, seen: int) -> bool:
        return self.cell.value != seen

    def fetch(self) -> tuple[int, bytes]:
        """The current generation and its payload (generation 0 has none: b"")."""
        gen = self.generation
        if gen == 0:
            return 0, b""
        with open(os.path.join(self._dir, str(gen)), "rb") as fh:
            return gen, fh.read()

    def close(self) -> None:
        """Remove the payload files (main process only, at shutdown)."""
        if os.getpid() == self._owner and self._made:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._made = False


class EngineReload:
    """Core-managed reload of the active config engine, for every engine (lua, python, native,
    third-party): ``reload()`` in the main process builds a fresh engine with the spec's
    factory and ``load()``s it (a broken script raises ScriptError and nothing changes), then
    publishes a new generation; ``follow()``, called by each worker before each message, builds
    and loads a fresh engine when the generation moved and makes it the active one.

    An engine that can say exactly what it loaded (optional ``snapshot() -> bytes``) and load
    that again (``load_snapshot(data)``) gets the checked bytes in every worker, never the file
    as it is by then; an engine without them loads the file in each worker too.
    """

    def __init__(self, core: Core, spec: EngineSpec) -> None:
        self.core = core
        self.spec = spec
        self.channel = ReloadChannel(spec.name)  # shared memory: made before the fork
        #: the channel's generation cell, read before every message (``cell.value != seen``)
        self.cell = self.channel.cell
        self.seen = 0
        self._initial: bytes | None = None  # what the main process loaded at start (gen 0)

    def start(self) -> Engine:
        """The first engine, in the main process before the fork (a broken script stops the
        start with its ScriptError)."""
        engine = self.spec.factory(self.core)
        engine.load()
        self._initial = _snapshot(engine)
        return engine

    def build(self) -> Engine:
        """A fresh engine loaded with the current generation (a worker at start)."""
        gen, payload = self.channel.fetch()
        self.seen = gen
        return self._load(payload if gen else self._initial)

    def _load(self, payload: bytes | None) -> Engine:
        engine = self.spec.factory(self.core)
        load_snapshot = getattr(engine, "load_snapshot", None)
        if payload is not None and load_snapshot is not None:
            load_snapshot(payload)
        else:
            engine.load()
        return engine

    def reload(self) -> int:
        """Check the script now (main process) and publish it; returns the new generation."""
        engine = self.spec.factory(self.core)
        engine.load()  # ScriptError (file:line: reason): the RPC answers it, nothing changes
        gen = self.channel.publish(_snapshot(engine) or b"")
        self.seen = gen
        self.core.engine = engine  # the main process runs the new one too (fork=no, RPCs)
        log.info("%s: script reloaded, generation %d; workers switch at their next message",
                 self.spec.name, gen)
        return gen

    def follow(self) -> None:
        """In a worker, before a message: take a new generation if one was published."""
        if self.channel.changed(self.seen):
            gen, payload = self.channel.fetch()
            self.seen = gen  # whatever happens, do not retry on every message
            try:
                engine = self._load(payload or None)
            except Exception as exc:  # the main process checked it: only a module could differ
                log.error("%s: generation %d failed to load here, the old script keeps "
                          "running: %s", self.spec.name, gen, exc)
                return
            self.core.engine = engine
            log.info("%s: worker %d switched to generation %d", self.spec.name,
                     self.core.worker_rank, gen)


def _snapshot(engine: Engine) -> bytes | None:
    take = getattr(engine, "snapshot", None)
    return take() if take is not None else None
