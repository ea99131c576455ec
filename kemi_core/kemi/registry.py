"""The KSR tree: every KEMI export, indexed by module then function name.

Built once at load time; a lookup is two dict reads (the seed's to-do, "optimize the indexing
of exported functions", done). Engines build their script-side KSR objects from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from kemi_core.kemi.exports import ExportError, KemiExport


class KemiRegistry:
    """Module name ("" for core) -> function name -> export."""

    def __init__(self) -> None:
        self._modules: dict[str, dict[str, KemiExport]] = {}

    def add(self, exports: Iterable[KemiExport]) -> None:
        """Register records; a second record with the same qualified name is an error."""
        for exp in exports:
            if not isinstance(exp, KemiExport):
                raise ExportError(f"not a KemiExport record: {exp!r}")
            funcs = self._modules.setdefault(exp.module, {})
            if exp.name in funcs:
                raise ExportError(f"KEMI function KSR.{exp.qualified_name} is exported twice")
            funcs[exp.name] = exp

    def wrap_all(self, wrap: Callable[[KemiExport], KemiExport]) -> None:
        """Replace every export by ``wrap(export)`` (the debugger's cfgtrace does this at
        mod_init, before any engine binds the functions)."""
        for funcs in self._modules.values():
            for name, exp in list(funcs.items()):
                funcs[name] = wrap(exp)

    def lookup(self, module: str, name: str) -> KemiExport | None:
        """The export for ``KSR.module.name`` (module "" for ``KSR.name``), or None."""
        funcs = self._modules.get(module)
        return funcs.get(name) if funcs is not None else None

    def module(self, module: str) -> dict[str, KemiExport]:
        """All functions of one module (empty when unknown)."""
        return self._modules.get(module, {})

    def has_module(self, module: str) -> bool:
        return module in self._modules

    @property
    def module_names(self) -> list[str]:
        """Module names in sorted order ("" for core first)."""
        return sorted(self._modules)

    def __iter__(self) -> Iterator[KemiExport]:
        for module in sorted(self._modules):
            funcs = self._modules[module]
            for name in sorted(funcs):
                yield funcs[name]

    def __len__(self) -> int:
        return sum(len(f) for f in self._modules.values())
