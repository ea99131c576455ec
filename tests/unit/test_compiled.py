"""The Cython-compiled call path (pyproject.toml [tool.kemi.compiled]): built, imported, never stale.

``make test`` sets KEMI_REQUIRE_COMPILED=1: then every listed module must be imported from its
extension module (a build that silently fell back to pure Python fails here). Without it (a machine
without Cython or a C compiler) only the stale-module guard of kemi_core/compiled.py is checked.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
import tomllib
import traceback
from pathlib import Path

import pytest

from kemi_core.compiled import StaleCompiledModule, source_if_stale

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def listed_modules() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        paths = tomllib.load(f)["tool"]["kemi"]["compiled"]
    names = []
    for rel in paths:
        parts = Path(rel).with_suffix("").parts
        names.append(".".join(parts[parts.index("src") + 1:] if "src" in parts else parts))
    return names


@pytest.mark.skipif(os.environ.get("KEMI_REQUIRE_COMPILED") != "1",
                    reason="KEMI_REQUIRE_COMPILED=1 (make test) asks for the compiled build")
@pytest.mark.parametrize("name", listed_modules())
def test_listed_module_runs_compiled(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ and module.__file__.endswith(SUFFIX), module.__file__


def test_no_compiled_module_off_the_list() -> None:
    """A module taken off the list must lose its compiled form (make dev removes it)."""
    sys.path.insert(0, str(ROOT))
    try:
        from compiled_build import leftovers
    finally:
        sys.path.remove(str(ROOT))
    assert leftovers() == []


def test_traceback_names_the_py_file_and_line() -> None:
    from kemi_core.sip import SipParseError
    from kemi_core.sip.uri import parse_uri

    with pytest.raises(SipParseError) as info:
        parse_uri("::::")
    last = traceback.extract_tb(info.value.__traceback__)[-1]
    assert last.filename.endswith(os.path.join("kemi_core", "sip", "uri.py"))
    assert last.lineno and last.lineno > 1


def _extension_spec(tmp_path: Path, py_newer: bool) -> importlib.machinery.ModuleSpec:
    """A spec as the path finder gives for pkg/mod.<ext>, with pkg/mod.py beside it."""
    compiled, source = tmp_path / f"mod{SUFFIX}", tmp_path / "mod.py"
    compiled.write_bytes(b"")
    source.write_text("X = 1\n")
    old, new = 1_000_000_000, 1_000_000_100
    os.utime(compiled, (old, new if not py_newer else old))
    os.utime(source, (old, new if py_newer else old))
    loader = importlib.machinery.ExtensionFileLoader("pkg.mod", str(compiled))
    return importlib.machinery.ModuleSpec("pkg.mod", loader, origin=str(compiled))


def test_fresh_compiled_module_is_kept(tmp_path: Path) -> None:
    assert source_if_stale(_extension_spec(tmp_path, py_newer=False)) is None


def test_stale_compiled_module_gives_way_to_its_source(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEMI_REQUIRE_COMPILED", raising=False)
    with pytest.warns(RuntimeWarning, match="make dev"):
        spec = source_if_stale(_extension_spec(tmp_path, py_newer=True))
    assert spec is not None and spec.origin == str(tmp_path / "mod.py")


def test_stale_compiled_module_is_refused_when_compiled_is_required(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEMI_REQUIRE_COMPILED", "1")
    with pytest.raises(StaleCompiledModule, match="make dev"):
        source_if_stale(_extension_spec(tmp_path, py_newer=True))
