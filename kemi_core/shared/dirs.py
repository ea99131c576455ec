"""Where a server's shared store lives: a private directory, on tmpfs when there is one.

Each server gets its own directory (mode 0700) named after its main process, so servers run
side by side never share one, and a directory left behind by a server that was killed (SIGKILL
skips the clean-up at exit) is recognised and removed by the next server of the same user.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("kemi.shared")

PREFIX = "kemi-shared-"
#: A file that marks a directory as ours (so stale clean-up never touches anything else).
MARKER = "KEMI_SHARED_STORE"
#: Overrides where store directories are made (a test, or a machine without /dev/shm).
ENV_BASE = "KEMI_SHARED_DIR"


def base_dir() -> Path:
    """$KEMI_SHARED_DIR, else /dev/shm (tmpfs: the store never touches a disk), else the
    temporary directory."""
    env = os.environ.get(ENV_BASE)
    if env:
        return Path(env)
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return Path(tempfile.gettempdir())


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a record left in a shared table by a process that
    died, a store directory of a server that is gone, can be told by it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # alive, another user's
    return True


def remove_stale(base: Path) -> int:
    """Remove store directories of this user whose server process is gone; returns how many."""
    removed = 0
    try:
        entries = list(base.iterdir())
    except OSError:
        return 0
    uid = os.getuid()
    for entry in entries:
        if not entry.name.startswith(PREFIX):
            continue
        pid_text = entry.name[len(PREFIX):].split("-", 1)[0]
        try:
            if not pid_text.isdigit() or entry.stat().st_uid != uid:
                continue
            if not (entry / MARKER).exists() or pid_alive(int(pid_text)):
                continue
        except OSError:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        log.info("removed the shared store of a server that is gone: %s", entry)
        removed += 1
    return removed


def make_private_dir(base: Path | None = None) -> Path:
    """A new empty directory for one server's store (stale ones of dead servers removed first)."""
    where = base or base_dir()
    where.mkdir(parents=True, exist_ok=True)
    remove_stale(where)
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=where))
    (path / MARKER).write_text(f"{os.getpid()}\n")
    return path
