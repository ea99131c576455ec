"""Live reload across worker processes: the main process validates, every worker follows.

A reload RPC runs in the main process (the control socket lives there). It reads the new script
or config ONCE, checks it by loading it there, and publishes exactly those bytes as a new
generation. Each worker compares the generation (one int in shared memory, made before fork) at
the start of its next request or reply route, and loads the published bytes, never the file:
the file may have changed again since, and a worker must not pick up an unchecked version.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from typing import Any


class ReloadChannel:
    """Generation counter + the published payload of each generation (files in a private dir)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._generation: Any = multiprocessing.Value("i", 0, lock=False)
        self._dir = tempfile.mkdtemp(prefix=f"kemi-reload-{name}-")
        self._owner = os.getpid()

    @property
    def generation(self) -> int:
        return int(self._generation.value)

    #: The Counter protocol engines read (``value`` is the generation).
    value = generation

    def publish(self, payload: bytes) -> int:
        """Make ``payload`` the current version for every worker; returns its generation."""
        gen = self.generation + 1
        tmp = os.path.join(self._dir, f".{gen}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(payload)
        os.replace(tmp, os.path.join(self._dir, str(gen)))
        self._generation.value = gen  # last: a worker never sees a generation without its file
        return gen

    def changed(self, seen: int) -> bool:
        return self._generation.value != seen

    def fetch(self) -> tuple[int, bytes]:
        """The current generation and its payload (generation 0 has none: b"")."""
        gen = self.generation
        if gen == 0:
            return 0, b""
        with open(os.path.join(self._dir, str(gen)), "rb") as fh:
            return gen, fh.read()

    def close(self) -> None:
        """Remove the payload files (main process only, at shutdown)."""
        if os.getpid() == self._owner:
            shutil.rmtree(self._dir, ignore_errors=True)
