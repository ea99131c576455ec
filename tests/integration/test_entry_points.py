"""Installed plugins through their entry points (the test-only distribution kemi-testmods and
the real plugins under plugins/)."""

from __future__ import annotations

import pytest

from kemi_core.config.model import CoreConfig
from kemi_core.errors import ConfigError
from kemi_core.plugins import (
    ModuleEntry,
    ModuleLoader,
    installed_modules,
    module_name_from_loadmodule,
)
from kemi_core.runtime.core import Core

# kemi-testmods (tests/plugins/) is provided by the suite, never installed.
pytestmark = pytest.mark.usefixtures("test_plugins")


def test_loadmodule_names() -> None:
    assert module_name_from_loadmodule("sl.so") == "sl"
    assert module_name_from_loadmodule("modules/tm.so") == "tm"
    assert module_name_from_loadmodule("/usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so") == "app_lua"
    assert module_name_from_loadmodule("maxfwd") == "maxfwd"


def test_third_party_module_and_engine_need_only_an_entry_point() -> None:
    mods = installed_modules()
    assert mods["testmod"].dist == "kemi-testmods"
    assert mods["app_replier"].dist == "kemi-testmods"
    core = Core(CoreConfig())
    loader = ModuleLoader(core)
    loader.load("testmod.so", "k.cfg", 3)
    loader.load("modules/app_replier.so", "k.cfg", 4)
    assert core.registry.lookup("testmod", "six") is not None
    assert "replier" in core.engine_specs
    assert loader.engine_modules["replier"] == "app_replier"
    core.set_param("testmod", "greeting", "hi", "k.cfg", 5)
    core.set_param("testmod", "count", "7", "k.cfg", 6)
    core.set_param("testmod", "item", "a", "k.cfg", 7)
    core.set_param("testmod", "item", "b", "k.cfg", 8)
    assert core.modparam("testmod", "greeting") == "hi"
    assert core.modparam("testmod", "count") == 7
    assert core.modparam("testmod", "item") == ["a", "b"]
    assert core.rpc_commands["testmod.greeting"].func(core, []) == "hi"


def test_missing_module_names_the_distribution() -> None:
    loader = ModuleLoader(Core(CoreConfig()))
    with pytest.raises(ConfigError) as err:
        loader.load("nosuchmod.so", "/etc/k.cfg", 12)
    assert str(err.value).startswith("/etc/k.cfg:12: module 'nosuchmod' is not installed")
    assert "pip install kemi-nosuchmod" in str(err.value)


def test_modparam_errors_carry_file_and_line() -> None:
    core = Core(CoreConfig())
    ModuleLoader(core).load("testmod")
    with pytest.raises(ConfigError, match=r"^k.cfg:9: module 'testmod' has no parameter 'nope'"):
        core.set_param("testmod", "nope", 1, "k.cfg", 9)
    with pytest.raises(ConfigError, match=r"^k.cfg:10: modparam testmod.count expects an integer"):
        core.set_param("testmod", "count", "many", "k.cfg", 10)
    with pytest.raises(ConfigError, match=r"^k.cfg:11: modparam for module 'tm' which is not loaded"):
        core.set_param("tm", "fr_timer", 1, "k.cfg", 11)


def test_two_distributions_claiming_one_module_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    class FakeDist:
        def __init__(self, name: str) -> None:
            self.metadata = {"Name": name}
            self.entry_points = [metadata.EntryPoint("sl", "x:y", "kemi.modules")]

    monkeypatch.setattr(metadata, "distributions", lambda: [FakeDist("kemi-sl"), FakeDist("other-sl")])
    from kemi_core.errors import ModuleError

    with pytest.raises(ModuleError, match="claimed by two distributions: kemi-sl and other-sl"):
        installed_modules()


def test_plugin_with_unknown_hook_is_refused() -> None:
    from kemi_core import hookimpl

    class Bad:
        @hookimpl
        def mod_regster(self, core: Core) -> None:  # misspelt hook
            pass

    loader = ModuleLoader(Core(CoreConfig()), available={"bad": ModuleEntry("bad", "x:y", "d")})
    with pytest.raises(ConfigError, match="does not fit kemi's hooks"):
        loader.register("bad", Bad(), "k.cfg", 1)
