"""app_python.reload: checked in the main process first, followed by forked workers."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from kemi_core.api import ScriptError

VERSION = """\
import KSR
def mod_init():
    return H()
class H:
    def ksr_request_route(self, msg):
        return {n}
"""


def test_reload_ok_and_broken(pyenv: Any) -> None:
    env = pyenv()
    path = env.write(VERSION.format(n=11))
    engine = env.start(path)
    rpc = env.core.rpc_commands["app_python.reload"].func
    assert env.core.run_route("ksr_request_route", env.ctx()) == 11

    path.write_text(VERSION.format(n=22))
    out = rpc(env.core, [])
    assert (out["engine"], out["old"], out["new"]) == ("python", 0, 1)
    assert env.core.run_route("ksr_request_route", env.ctx()) == 22

    path.write_text("def mod_init():\n    return (\n")  # broken: the old handler stays
    with pytest.raises(ScriptError, match="reload refused.*SyntaxError"):
        rpc(env.core, [])
    assert env.core.run_route("ksr_request_route", env.ctx()) == 22
    path.write_text("def mod_init():\n    return object()\n")  # loads, but no request route
    with pytest.raises(ScriptError, match="ksr_request_route"):
        engine.reload()
    assert env.core.run_route("ksr_request_route", env.ctx()) == 22
    assert env.core.engine_generation == 1


def _worker(engine: Any, env: Any, conn: Any) -> None:
    """A forked worker: run the request route each time the parent asks."""
    env.core.worker_rank = 1
    for _ in range(3):
        if conn.recv() != "run":
            break
        env.core.follow_reload()  # what the dispatcher does before each message
        conn.send(env.core.run_route("ksr_request_route", env.ctx()))
    conn.close()


def test_forked_worker_follows_a_reload_done_in_the_main_process(pyenv: Any) -> None:
    env = pyenv()
    path = env.write(VERSION.format(n=1))
    engine = env.start(path)
    fork = multiprocessing.get_context("fork")
    parent, child = fork.Pipe()
    proc = fork.Process(target=_worker, args=(engine, env, child))
    proc.start()
    try:
        parent.send("run")
        assert parent.poll(20) and parent.recv() == 1
        path.write_text(VERSION.format(n=2))
        env.core.rpc_commands["app_python.reload"].func(env.core, [])
        parent.send("run")
        assert parent.poll(20) and parent.recv() == 2  # the worker re-imported
        parent.send("run")
        assert parent.poll(20) and parent.recv() == 2
    finally:
        proc.join(20)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
    assert proc.exitcode == 0
