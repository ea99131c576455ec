"""ReloadChannel: what the main process publishes is what a forked worker reads."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from kemi_core.runtime.reload import ReloadChannel


def test_publish_fetch_across_fork() -> None:
    ch = ReloadChannel("test")
    try:
        assert ch.fetch() == (0, b"")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the "worker": waits for generation 2, reports what it read
            os.close(w)
            os.read(r, 1)
            gen, payload = ch.fetch()
            os._exit(0 if (gen, payload) == (2, b"v2") and ch.changed(0) else 1)
        os.close(r)
        assert ch.publish(b"v1") == 1
        assert ch.publish(b"v2") == 2
        os.write(w, b"x")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        ch.close()


def test_directory_made_at_first_publish_and_removed_at_close() -> None:
    """A server that never reloads leaves nothing in the temp dir, even if it is killed; one
    that did removes what it published at shutdown."""
    ch = ReloadChannel("test")
    try:
        assert not os.path.exists(ch._dir)
        assert ch.fetch() == (0, b"")
        ch.publish(b"v1")
        assert os.path.isdir(ch._dir)
        assert os.stat(ch._dir).st_mode & 0o777 == 0o700
        assert ch.fetch() == (1, b"v1")
    finally:
        ch.close()
    assert not os.path.exists(ch._dir)


def test_directory_removed_when_the_process_exits_without_close() -> None:
    """An in-process server (a test's, an embedding program's) that reloaded and ends without
    its shutdown still leaves nothing behind."""
    code = ("from kemi_core.runtime.reload import ReloadChannel\n"
            "ch = ReloadChannel('test'); ch.publish(b'v1'); print(ch._dir)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    made = out.stdout.strip()
    assert made.startswith(tempfile.gettempdir())
    assert not os.path.exists(made)
