"""Plugin discovery and loading: ``loadmodule "x.so"`` -> entry point ``kemi.modules:x``.

Every SIP module and config engine is a distribution exposing an object (usually its Python
module) with pluggy hook implementations under the entry-point group ``kemi.modules``. Nothing is
registered until kamailio.cfg loads it, as in Kamailio; hooks are then called for that module
alone, in load order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib import metadata
from typing import Any

import attrs
import pluggy

from kemi_core import PROJECT_NAME, hookspecs
from kemi_core.engine import EngineSpec
from kemi_core.errors import ConfigError, ModuleError
from kemi_core.kemi.exports import ExportError, KemiExport
from kemi_core.runtime.core import Core

log = logging.getLogger("kemi.plugins")

ENTRY_POINT_GROUP = "kemi.modules"

#: Modules that kamailio.cfg files commonly load and that have a different distribution name.
_DIST_HINTS = {"app_lua": "kemi-engine-lua", "app_python": "kemi-engine-python",
               "app_python3": "kemi-engine-python", "app_python3s": "kemi-engine-python"}


@attrs.frozen
class ModuleEntry:
    """An installed module: its entry point and the distribution that ships it."""

    name: str
    value: str  # "package.module:attr"
    dist: str

    def load(self) -> Any:
        return metadata.EntryPoint(self.name, self.value, ENTRY_POINT_GROUP).load()


def module_name_from_loadmodule(raw: str) -> str:
    """``"modules/sl.so"`` / ``"sl"`` / ``"/usr/lib/kamailio/modules/tm.so"`` -> ``sl`` / ``tm``."""
    name = raw.strip().rsplit("/", 1)[-1]
    return name[:-3] if name.endswith(".so") else name


def installed_modules() -> dict[str, ModuleEntry]:
    """Every module installed in this environment, by name; two distributions claiming one
    name is an error, never a silent pick."""
    found: dict[str, ModuleEntry] = {}
    for dist in metadata.distributions():
        dist_name = dist.metadata["Name"] or "?"
        for ep in dist.entry_points:
            if ep.group != ENTRY_POINT_GROUP:
                continue
            prev = found.get(ep.name)
            if prev is not None and prev.dist != dist_name:
                raise ModuleError(
                    f"module {ep.name!r} is claimed by two distributions: {prev.dist} and {dist_name}"
                )
            found[ep.name] = ModuleEntry(ep.name, ep.value, dist_name)
    return found


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


class ModuleLoader:
    """Loads modules into a Core, one ``loadmodule`` at a time."""

    def __init__(self, core: Core, available: dict[str, ModuleEntry] | None = None) -> None:
        self.core = core
        self.pm = make_plugin_manager()
        self._available = available
        self.plugins: dict[str, Any] = {}  # module name -> plugin object, in load order
        self.engine_modules: dict[str, str] = {}  # engine name -> module that registered it
        core.loader = self

    @property
    def available(self) -> dict[str, ModuleEntry]:
        if self._available is None:
            self._available = installed_modules()
        return self._available

    def _call(self, plugin: Any, hook: str, **kwargs: Any) -> list[Any]:
        """Call one hook of one plugin only (pluggy would otherwise call every plugin)."""
        caller = self.pm.subset_hook_caller(
            hook, remove_plugins=[p for p in self.pm.get_plugins() if p is not plugin]
        )
        result: list[Any] = caller(**kwargs)
        return result

    def load(self, raw_name: str, file: str | None = None, line: int | None = None) -> None:
        """``loadmodule``: find the module, register it, collect its exports and engines."""
        name = module_name_from_loadmodule(raw_name)
        if name in self.plugins:
            log.warning("%s:%s: module %s loaded twice; the second loadmodule is ignored", file, line, name)
            return
        entry = self.available.get(name)
        if entry is None:
            dist = _DIST_HINTS.get(name, f"kemi-{name.replace('_', '-')}")
            raise ConfigError(
                f"module {name!r} is not installed (loadmodule {raw_name!r}); "
                f"install it with: pip install {dist}", file, line)
        try:
            plugin = entry.load()
        except Exception as exc:  # an installed plugin that fails to import
            raise ConfigError(f"module {name!r} ({entry.dist}) failed to import: {exc}", file, line)
        self.register(name, plugin, file, line)

    def register(self, name: str, plugin: Any, file: str | None = None,
                 line: int | None = None) -> None:
        """Register an already imported plugin object as module ``name``."""
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise ConfigError(f"module {name!r} does not fit kemi's hooks: {exc}", file, line)
        self.plugins[name] = plugin
        self.core.loaded_modules.append(name)
        try:
            self._call(plugin, "mod_register", core=self.core)
            for batch in self._call(plugin, "sr_kemi_modules_add", core=self.core):
                self._add_exports(name, batch)
            for batch in self._call(plugin, "sr_kemi_eng_register", core=self.core):
                for spec in batch or ():
                    self._add_engine(name, spec)
        except (ModuleError, ExportError) as exc:
            raise ConfigError(f"module {name!r}: {exc}", file, line)

    def _add_exports(self, name: str, batch: Iterable[KemiExport] | None) -> None:
        self.core.registry.add(batch or ())

    def _add_engine(self, name: str, spec: EngineSpec) -> None:
        if not isinstance(spec, EngineSpec):
            raise ModuleError(f"sr_kemi_eng_register returned {spec!r}, not an EngineSpec")
        if spec.name in self.core.engine_specs:
            raise ModuleError(f"config engine {spec.name!r} registered twice")
        self.core.engine_specs[spec.name] = spec
        self.engine_modules[spec.name] = name

    def init_all(self) -> None:
        """``mod_init`` of every module, in load order (main process, after modparams)."""
        for name, plugin in self.plugins.items():
            try:
                self._call(plugin, "mod_init", core=self.core)
            except ConfigError as exc:
                if exc.line is not None:  # a parameter's value (core.param_error): at its place
                    raise
                raise ModuleError(f"module {name}: mod_init failed: {exc}")
            except ModuleError as exc:
                raise ModuleError(f"module {name}: mod_init failed: {exc}")

    def child_init_all(self, rank: int) -> None:
        for plugin in self.plugins.values():
            self._call(plugin, "child_init", core=self.core, rank=rank)

    def write_script_stubs(self, directory: str) -> list[str]:
        """Every loaded module's ``write_script_stubs`` into ``directory``; the paths written."""
        written: list[str] = []
        for plugin in self.plugins.values():
            for paths in self._call(plugin, "write_script_stubs", core=self.core,
                                    directory=directory):
                written += [str(p) for p in paths or ()]
        return written

    def destroy_all(self) -> None:
        for name, plugin in reversed(list(self.plugins.items())):
            try:
                self._call(plugin, "mod_destroy", core=self.core)
            except Exception:  # shutdown goes on whatever one module does
                log.exception("module %s: mod_destroy failed", name)
