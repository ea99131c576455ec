"""mi_rpc.so: Kamailio's bridge that let old MI clients run RPC commands.

In kemi every control channel (the control socket and the mi_fifo FIFO) already runs the RPC
commands directly, so this module has nothing left to do; it exists so configs that load it
(like the seed's examples) run unchanged, and it says so once at start.
"""

from __future__ import annotations

import logging

from kemi_core.api import Core, hookimpl

log = logging.getLogger("kemi.mi_rpc")


@hookimpl
def mod_init(core: Core) -> None:
    log.info("mi_rpc: RPC commands are available on every control channel; nothing to bridge")
