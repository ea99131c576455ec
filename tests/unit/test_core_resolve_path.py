"""core.resolve_path: relative script paths as Kamailio reads them (working directory), else
next to kamailio.cfg."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.config.model import CoreConfig
from kemi_core.runtime.core import Core


def test_working_directory_first_then_next_to_the_config(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    etc, cwd = tmp_path / "etc", tmp_path / "cwd"
    etc.mkdir()
    cwd.mkdir()
    (etc / "route.lua").write_text("-- beside the cfg")
    core = Core(CoreConfig(source=str(etc / "kamailio.cfg")))
    monkeypatch.chdir(cwd)
    assert core.resolve_path("route.lua") == str(etc / "route.lua")
    (cwd / "route.lua").write_text("-- in the working directory")
    assert core.resolve_path("route.lua") == "route.lua"
    assert core.resolve_path("missing.lua") == "missing.lua"  # the engine reports it, as given
    assert core.resolve_path("/abs/x.lua") == "/abs/x.lua"
    assert core.resolve_path("") == ""
