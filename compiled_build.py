"""Cython-compiled modules of the call path: the build side (setup.py of kemi-core and plugins).

The list lives in the root pyproject.toml, ``[tool.kemi.compiled]`` (path = why it is there). Each
listed ``.py`` stays the source of truth: Cython 3 compiles it, in pure-Python mode with Python's
semantics kept (``annotation_typing=False``: hints are not C types; ``binding=True``: functions keep
their signature and attributes), to an extension module beside it that the import system prefers.
Without Cython or a C compiler the install goes on and the ``.py`` runs (``optional=True``).

    python compiled_build.py   # (re)build every listed module in place: what ``make dev`` runs

Only a distribution with a compiled module older than its ``.py`` is rebuilt; kemi_core/compiled.py
imports the ``.py`` instead of a compiled form older than it, so edited source is never shadowed.
"""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DIRECTIVES = {"language_level": 3, "annotation_typing": False, "binding": True}


def compiled_paths() -> dict[str, str]:
    """Repository-relative path of each compiled module -> why it is compiled."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        table: dict[str, str] = tomllib.load(f)["tool"]["kemi"]["compiled"]
    return table


def extensions(dist_dir: str | Path) -> list:
    """The listed modules of the distribution in ``dist_dir``, cythonized; [] without Cython."""
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError:
        print("compiled_build: Cython is not installed, the call path stays pure Python",
              file=sys.stderr)
        return []
    dist = Path(dist_dir).resolve()
    found = []
    for rel in compiled_paths():
        if owner(rel) != dist:
            continue
        path = ROOT / rel
        source = path.relative_to(dist)  # setuptools wants paths relative to setup.py
        package_path = source.relative_to("src") if source.parts[0] == "src" else source
        name = ".".join(package_path.with_suffix("").parts)
        found.append(Extension(name, [str(source)], optional=True))
    if not found:
        return []
    return cythonize(found, compiler_directives=DIRECTIVES, build_dir="build/cython",
                     quiet=True)


def owner(rel: str) -> Path:
    """The distribution (directory with a setup.py) a listed module belongs to."""
    parts = Path(rel).parts
    return ROOT / parts[0] / parts[1] if parts[0] == "plugins" else ROOT


#: setup(options=...): the compiled modules are built in parallel (pip builds them on each install)
SETUP_OPTIONS = {"build_ext": {"parallel": os.cpu_count() or 1}}


def dist_dirs() -> list[Path]:
    """The distributions that hold listed modules."""
    return sorted({owner(rel) for rel in compiled_paths()})


def out_of_date(rel: str) -> bool:
    """No compiled form beside the listed ``.py``, or one older than it (what
    kemi_core/compiled.py refuses to import)."""
    source = ROOT / rel
    built = source.with_suffix(importlib.machinery.EXTENSION_SUFFIXES[0])
    return not built.exists() or built.stat().st_mtime < source.stat().st_mtime


def leftovers() -> list[Path]:
    """Compiled forms beside a ``.py`` that is no longer on the list: they would shadow it."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    listed = {ROOT / rel for rel in compiled_paths()}
    found = []
    for built in [*ROOT.glob(f"kemi_core/**/*{suffix}"), *ROOT.glob(f"plugins/*/src/**/*{suffix}")]:
        source = built.with_name(built.name.removesuffix(suffix) + ".py")
        if source.exists() and source not in listed:
            found.append(built)
    return found


def main() -> None:
    """Remove the leftovers; build in place the compiled modules of each distribution that has
    one out of date.

    The check is ours, not build_ext's: build_ext compares with its build/lib copy, which a
    pip install (built in a temporary directory) does not leave, so it would rebuild them all.
    """
    for built in leftovers():
        print(f"compiled_build: removing {built.relative_to(ROOT)} (off the list)", file=sys.stderr)
        built.unlink()
    for dist in dist_dirs():
        if any(out_of_date(rel) for rel in compiled_paths() if owner(rel) == dist):
            subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                           cwd=dist, check=True)


if __name__ == "__main__":
    main()
