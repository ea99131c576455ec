"""In the main process: read the workers' /proc files often and cheaply.

The supervisor reads two small files of each worker at each look: ``wchan`` (idle_probe.py)
and ``statm`` (resident memory). Opening a /proc file costs three system calls and a Python
file object (~20-30 us); a file kept open and read again from offset 0 (``pread``) costs one
(~4 us). A kept file names the process, not its number: once the process is gone, the read
fails (it never reads a later process that got the same pid).
"""

from __future__ import annotations

import os


class ProcFiles:
    """/proc/PID/NAME files kept open, per pid."""

    def __init__(self) -> None:
        self._fds: dict[int, dict[str, int]] = {}

    def read(self, pid: int, name: str, size: int = 256) -> bytes | None:
        """The file's content now (None when the process is gone or it cannot be read)."""
        files = self._fds.get(pid)
        if files is None:
            files = self._fds[pid] = {}
        fd = files.get(name)
        if fd is None:
            try:
                fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
            files[name] = fd
        try:
            return os.pread(fd, size, 0)
        except OSError:  # the process is gone
            self.forget(pid)
            return None

    def forget(self, pid: int) -> None:
        """``pid`` exited: close its files."""
        for fd in self._fds.pop(pid, {}).values():
            os.close(fd)

    def close(self) -> None:
        for pid in list(self._fds):
            self.forget(pid)
