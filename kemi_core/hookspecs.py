"""Every hook a kemi plugin (SIP module or config engine) may implement.

Every hook receives the :class:`~kemi_core.api.Core` as ``core``; pluggy lets an implementation
take fewer arguments than the spec names, so ``def child_init(rank)`` and
``def sr_kemi_modules_add()`` work as well as ``def child_init(core, rank)``.

Hooks run at load, init, reload and shutdown only: the per-message path never goes through
pluggy (a hook call costs about a microsecond). Each hook is called for one module at a time,
in ``loadmodule`` order, so a module's implementation needs no filtering of its own.

Processes: kemi has a **main process** (it reads the config, loads modules, serves the control
socket and runs RPC commands) and, with ``fork=yes``, ``children`` **worker processes** forked
from it once modules are initialised (they receive SIP and run the routing script and the KEMI
functions it calls). What a hook builds in the main process before the fork is inherited by
every worker as a copy; what the processes share lives in shared memory (``core.counter``,
the shared store). The plugin authors' guide (docs/plugins/process-model.md) has the table.
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
    """**Main process, at** ``loadmodule``: declare the module's parameters
    (``core.declare_param``), RPC commands (``core.add_rpc``), native cfg functions
    (``core.add_cfg_function``), counters (``core.counter``), pseudo-variables
    (``core.pv.register``) and services (``core.provide``). Parameter values are not known
    yet. Raise :class:`~kemi_core.api.ModuleError` to refuse loading."""


@hookspec
def sr_kemi_modules_add(core: Core) -> list[KemiExport]:  # type: ignore[empty-body]
    """**Main process, right after** ``mod_register``: return the module's KEMI exports
    (Kamailio's ``sr_kemi_modules_add``). The records are checked and added to
    ``core.registry``; scripts call them as ``KSR.<module>.<name>``."""


@hookspec
def sr_kemi_eng_register(core: Core) -> list[EngineSpec]:  # type: ignore[empty-body]
    """**Main process, right after** ``sr_kemi_modules_add``: return the config engines this
    module provides (``EngineSpec("lua", factory)``). ``cfgengine`` can only select an engine
    whose module was loaded before it."""


@hookspec
def mod_init(core: Core) -> None:
    """**Main process, once, after every** ``modparam`` **is applied and before the fork**:
    validate parameters, open resources. Raise
    :class:`~kemi_core.api.ModuleError` with a clear message to stop start-up."""


@hookspec
def child_init(core: Core, rank: int) -> None:
    """**Each worker process, right after the fork** (``rank`` 1..children; with ``fork=no``
    the single process is rank 1): per-process state such as an interpreter runtime or a
    database connection. Runs before the worker's engine is built and takes traffic."""


@hookspec
def mod_destroy(core: Core) -> None:
    """**Main process, at shutdown**, after the workers stopped, in reverse load order:
    release resources. An exception is logged and shutdown goes on."""


@hookspec
def write_script_stubs(core: Core, directory: str) -> list[str]:  # type: ignore[empty-body]
    """**``kemi docs --stubs DIR``** (no server runs): write typing stubs for routing scripts
    into ``directory`` from ``core.registry`` (which holds every installed module's exports)
    and return the paths written. An engine module offers this for its script language."""
