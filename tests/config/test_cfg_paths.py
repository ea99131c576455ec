"""Script files named by modparams: relative to the config's directory, then to the working
directory; a missing one is refused at the modparam's file:line."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from kemi_core.config.model import CoreConfig
from kemi_core.config.paths import resolve_existing_file
from kemi_core.errors import ConfigError
from kemi_core.runtime.core import Core


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A config directory and a separate working directory (the process's cwd)."""
    cfg_dir, cwd = tmp_path / "etc", tmp_path / "work"
    cfg_dir.mkdir()
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cfg_dir, cwd


def test_relative_to_the_config_directory_first(layout: tuple[Path, Path],
                                                caplog: pytest.LogCaptureFixture) -> None:
    cfg_dir, cwd = layout
    (cfg_dir / "route.lua").write_text("")
    (cwd / "route.lua").write_text("")  # also here: the config's directory wins
    with caplog.at_level(logging.DEBUG, logger="kemi.config"):
        path = resolve_existing_file("route.lua", "app_lua.load", str(cfg_dir / "k.cfg"), 9)
    assert path == str(cfg_dir / "route.lua")
    assert f"the config's directory {cfg_dir}" in caplog.text


def test_the_working_directory_as_fallback(layout: tuple[Path, Path],
                                           caplog: pytest.LogCaptureFixture) -> None:
    cfg_dir, cwd = layout
    (cwd / "scripts").mkdir()
    (cwd / "scripts" / "route.lua").write_text("")
    with caplog.at_level(logging.DEBUG, logger="kemi.config"):
        path = resolve_existing_file("scripts/route.lua", "app_lua.load",
                                     str(cfg_dir / "k.cfg"), 9)
    assert path == str(cwd / "scripts" / "route.lua")
    assert f"the working directory {cwd}" in caplog.text


def test_a_missing_file_names_the_modparam_line(layout: tuple[Path, Path]) -> None:
    cfg_dir, cwd = layout
    cfg = str(cfg_dir / "k.cfg")
    with pytest.raises(ConfigError) as err:
        resolve_existing_file("route.lua", "app_lua.load", cfg, 12)
    assert str(err.value) == (f"{cfg}:12: app_lua.load: file 'route.lua' not found (looked in "
                              f"the config's directory {cfg_dir} or the working directory {cwd})")
    with pytest.raises(ConfigError, match=rf"^{cfg}:13: app_lua.load: file /nope/r.lua not found$"):
        resolve_existing_file("/nope/r.lua", "app_lua.load", cfg, 13)
    os.mkdir(cfg_dir / "adir")  # a directory is no script
    with pytest.raises(ConfigError, match="not found"):
        resolve_existing_file("adir", "app_lua.load", cfg, 14)


def test_declared_file_params_are_stored_absolute(layout: tuple[Path, Path]) -> None:
    cfg_dir, _ = layout
    (cfg_dir / "a.lua").write_text("")
    core = Core(CoreConfig())
    core.loaded_modules.append("m")
    core.declare_param("m", "load", str, multi=True, existing_file=True)
    core.declare_param("m", "name", str, "")
    core.set_param("m", "load", "a.lua", str(cfg_dir / "k.cfg"), 3)
    core.set_param("m", "name", "a.lua", str(cfg_dir / "k.cfg"), 4)  # not a file param
    assert core.modparam("m", "load") == [str(cfg_dir / "a.lua")]
    assert core.modparam("m", "name") == "a.lua"
    with pytest.raises(ConfigError, match=r"k.cfg:5: m.load: file 'b.lua' not found"):
        core.set_param("m", "load", "b.lua", str(cfg_dir / "k.cfg"), 5)
