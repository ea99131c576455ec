"""Every hook a kemi plugin (SIP module or config engine) may implement.

Hooks run at load, init, reload and shutdown only: the per-message path never goes through
pluggy (a hook call costs about a microsecond). Each hook is called for one module at a time,
in ``loadmodule`` order, so a module's implementation needs no filtering of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kemi_core import hookspec

if TYPE_CHECKING:
    from kemi_core.engine import EngineSpec
    from kemi_core.kemi.exports import KemiExport
    from kemi_core.runtime.core import Core


@hookspec
def mod_register(core: Core) -> None:
    """Called at ``loadmodule``: declare the module's parameters (``core.declare_param``), RPC
    commands (``core.add_rpc``) and native cfg functions (``core.add_cfg_function``).
    Raise :class:`kemi_core.errors.ModuleError` to refuse loading."""


@hookspec
def sr_kemi_modules_add() -> list[KemiExport]:  # type: ignore[empty-body]
    """Return the module's KEMI exports (Kamailio's ``sr_kemi_modules_add``). Called right
    after ``mod_register``; the records are checked and added to the KSR registry."""


@hookspec
def sr_kemi_eng_register() -> list[EngineSpec]:  # type: ignore[empty-body]
    """Return the config engines this module provides (``lua``, ``python`` ...). ``cfgengine``
    can only select an engine whose module was loaded before it."""


@hookspec
def mod_init(core: Core) -> None:
    """Called once in the main process after all modparams are set: validate parameters, open
    resources. Raise :class:`kemi_core.errors.ModuleError` with a clear message to stop start-up."""


@hookspec
def child_init(rank: int) -> None:
    """Called in each worker process after fork (rank 1..children); per-process state such as
    an interpreter runtime is created here."""


@hookspec
def mod_destroy() -> None:
    """Called at shutdown: release resources."""
