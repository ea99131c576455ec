"""Who holds which socket, from /proc: what tests check instead of guessing with a sleep."""

from __future__ import annotations

import os


def udp_inodes(port: int) -> set[str]:
    """Inodes of the UDP sockets bound to 127.0.0.1:port (/proc/net/udp)."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as fh:
        rows = [line.split() for line in fh.readlines()[1:]]
    return {row[9] for row in rows if row[1] == local}


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process ``pid`` holds open."""
    found: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[8:-1])
    return found
