"""Live reload of native routes in every worker: ``kemi rpc cfg.reload`` (Kamailio cannot).

The RPC runs in the main process: it re-reads kamailio.cfg, compiles the route blocks there
(an error answers the RPC and changes nothing), then publishes those exact blocks on a
ReloadChannel. Each worker's engine notices the new generation at the start of its next request
or reply route (one int read) and compiles the published blocks, not the file.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Sequence
from typing import Any

from kemi_core.config.model import RouteBlock
from kemi_core.errors import ScriptError
from kemi_core.native.engine import NativeEngine
from kemi_core.runtime.core import Core
from kemi_core.runtime.reload import ReloadChannel

log = logging.getLogger("kemi.native")


class LiveNativeEngine(NativeEngine):
    """A NativeEngine that follows the generations published by ``cfg.reload``."""

    def __init__(self, core: Core, blocks: Sequence[RouteBlock] | None,
                 reload_source: Callable[[], Sequence[RouteBlock]], channel: ReloadChannel) -> None:
        super().__init__(core, blocks, reload_source=reload_source)
        self._channel: ReloadChannel = channel  # NativeEngine.run checks it on each route
        self._seen = channel.generation

    def load(self) -> None:
        super().load()
        self._seen = self._channel.generation
        if self._seen:  # a worker started after a reload: take the published routes
            self._adopt()

    # run: NativeEngine.run checks self._channel first (no extra call per message).

    def _adopt(self) -> None:
        gen, payload = self._channel.fetch()
        self._seen = gen
        blocks: list[RouteBlock] = pickle.loads(payload)
        try:
            self._install(self._compile(blocks))
            self._blocks = blocks
            log.info("native routes reloaded (generation %d)", gen)
        except ScriptError as exc:  # the main process compiled these: only a module could differ
            log.error("native routes of generation %d failed here, old routes kept: %s", gen, exc)


def install_cfg_reload(core: Core, reload_source: Callable[[], Sequence[RouteBlock]]) -> ReloadChannel:
    """Create the reload channel (before fork) and register the ``cfg.reload`` RPC."""
    channel = ReloadChannel("native")

    def rpc_reload(core: Core, params: list[Any]) -> str:
        blocks = list(reload_source())
        NativeEngine(core, blocks).load()  # ScriptError with file:line:column answers the RPC
        gen = channel.publish(pickle.dumps(blocks))
        return f"native routes compiled; workers switch at their next message (generation {gen})"

    core.add_rpc("cfg.reload", rpc_reload, "recompile kamailio.cfg's route blocks in every worker")
    return channel
