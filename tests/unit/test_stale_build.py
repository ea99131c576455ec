"""kemi_core.sip.syntax.stale_build: a compiled module older than its C source is reported."""

from __future__ import annotations

import os
from pathlib import Path

from kemi_core.sip.syntax import stale_build


def _files(tmp_path: Path, source_time: float, built_time: float) -> tuple[Path, Path]:
    source, built = tmp_path / "_fast.c", tmp_path / "_fast.so"
    source.write_text("/* c */")
    built.write_bytes(b"\x7fELF")
    os.utime(source, (source_time, source_time))
    os.utime(built, (built_time, built_time))
    return source, built


def test_a_module_built_before_its_source_changed_is_stale(tmp_path: Path) -> None:
    assert stale_build(*_files(tmp_path, source_time=2_000, built_time=1_000))


def test_a_module_built_after_its_source_is_not_stale(tmp_path: Path) -> None:
    assert not stale_build(*_files(tmp_path, source_time=1_000, built_time=2_000))


def test_no_source_beside_the_module_is_an_installed_wheel(tmp_path: Path) -> None:
    built = tmp_path / "_fast.so"
    built.write_bytes(b"\x7fELF")
    assert not stale_build(tmp_path / "_fast.c", built)


def test_this_tree_is_built_from_its_current_source() -> None:
    # (make dev / make test rebuild _fast when _fast.c changes; a warning here means they
    # were bypassed)
    import importlib.util

    import kemi_core.sip.syntax as syntax

    spec = importlib.util.find_spec("kemi_core.sip._fast")
    if spec is None or spec.origin is None:
        return  # not built: nothing to compare
    assert not stale_build(Path(syntax.__file__).with_name("_fast.c"), Path(spec.origin))
