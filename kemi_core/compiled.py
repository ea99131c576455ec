"""Never let a stale compiled module shadow its edited source.

The call path's modules may be compiled by Cython into extension modules beside their ``.py``
(pyproject.toml ``[tool.kemi.compiled]``; ``make dev`` builds them in place). Python imports the
extension first, so after an edit of the ``.py`` the old code would run. This finder, installed by
``kemi_core/__init__.py`` ahead of the others, imports the ``.py`` instead when it is newer than
its compiled form, with a warning; with ``KEMI_REQUIRE_COMPILED=1`` (``make test``) it refuses.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType


class StaleCompiledModule(ImportError):
    """A compiled module is older than its .py and KEMI_REQUIRE_COMPILED=1 forbids the .py."""


def source_if_stale(spec: ModuleSpec) -> ModuleSpec | None:
    """The spec of ``spec``'s ``.py`` when that is newer than the compiled module, else None."""
    if not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader) or not spec.origin:
        return None
    source = os.path.join(os.path.dirname(spec.origin), spec.name.rpartition(".")[2] + ".py")
    try:
        if os.stat(source).st_mtime <= os.stat(spec.origin).st_mtime:
            return None
    except FileNotFoundError:  # a C extension without a .py twin (kemi_core.sip._fast)
        return None
    if os.environ.get("KEMI_REQUIRE_COMPILED") == "1":
        raise StaleCompiledModule(f"{spec.origin} is older than {source}: run `make dev`")
    warnings.warn(f"{spec.name}: {source} is newer than its compiled module, running the .py "
                  "(slower); `make dev` rebuilds it", RuntimeWarning, stacklevel=2)
    return importlib.util.spec_from_file_location(spec.name, source)


class FreshSourceFinder(importlib.abc.MetaPathFinder):
    """kemi's modules as the path finder finds them, but a stale compiled one gives its .py."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if path is None or not fullname.startswith("kemi"):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None:
            return None
        return source_if_stale(spec) or spec


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, FreshSourceFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, FreshSourceFinder())
