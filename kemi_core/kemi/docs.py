"""Documentation of every KEMI export installed (``kemi docs``): Markdown and JSON."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from kemi_core.config.model import CoreConfig
from kemi_core.errors import KemiError
from kemi_core.kemi.exports import KemiExport
from kemi_core.kemi.registry import KemiRegistry

if TYPE_CHECKING:
    from kemi_core.runtime.core import Core

log = logging.getLogger("kemi.docs")


def all_exports_registry() -> KemiRegistry:
    """A registry with the core exports and those of every installed module."""
    return all_modules_core().registry


def all_modules_core() -> Core:
    """A Core (no server) with the core exports and every installed module loaded."""
    from kemi_core.core_exports import core_exports
    from kemi_core.plugins import ModuleLoader, installed_modules
    from kemi_core.runtime.core import Core

    core = Core(CoreConfig())
    core.registry.add(core_exports())
    loader = ModuleLoader(core)
    for name in sorted(installed_modules()):
        try:
            loader.load(name)
        except KemiError as exc:
            log.debug("module %s skipped: %s", name, exc)  # e.g. app_python3 beside app_python
    return core


def _params(exp: KemiExport) -> list[dict[str, str]]:
    names = exp.param_names or tuple(f"p{i + 1}" for i in range(len(exp.params)))
    return [{"name": n, "kind": k.value} for n, k in zip(names, exp.params, strict=True)]


def as_json(registry: KemiRegistry) -> list[dict[str, Any]]:
    return [{"module": e.module, "name": e.name, "return": e.returns.value, "params": _params(e),
             "doc": e.doc} for e in registry]


def summary(doc: str) -> str:
    """A docstring's first paragraph on one line: whole sentences, however they wrap."""
    paragraph = re.split(r"\n\s*\n", doc.strip(), maxsplit=1)[0]
    return " ".join(paragraph.split())


def as_markdown(registry: KemiRegistry) -> str:
    out = ["# KEMI functions", ""]
    for module in registry.module_names:
        out += [f"## KSR.{module}" if module else "## KSR (core)", ""]
        for exp in registry.module(module).values():
            out.append(f"- `{exp.signature()}`" + (f": {summary(exp.doc)}" if exp.doc else ""))
        out.append("")
    return "\n".join(out)
