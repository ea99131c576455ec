"""Every hook receives the Core (or fewer arguments); services are typed provide/require."""

from __future__ import annotations

from typing import Any

import pytest

from kemi_core.api import (
    Core,
    CoreConfig,
    EngineSpec,
    KemiExport,
    ModuleError,
    MsgContext,
    TmApi,
    export,
    hookimpl,
)
from kemi_core.testing import ModuleLoader


class Recorder:
    """A plugin whose every hook takes the core and records the call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def mod_register(self, core: Core) -> None:
        self.calls.append(("mod_register", core))

    @hookimpl
    def sr_kemi_modules_add(self, core: Core) -> list[KemiExport]:
        self.calls.append(("sr_kemi_modules_add", core))
        return [export("rec", "ping", ping)]

    @hookimpl
    def sr_kemi_eng_register(self, core: Core) -> list[EngineSpec]:
        self.calls.append(("sr_kemi_eng_register", core))
        return []

    @hookimpl
    def mod_init(self, core: Core) -> None:
        self.calls.append(("mod_init", core))

    @hookimpl
    def child_init(self, core: Core, rank: int) -> None:
        self.calls.append(("child_init", (core, rank)))

    @hookimpl
    def mod_destroy(self, core: Core) -> None:
        self.calls.append(("mod_destroy", core))


class Minimal:
    """Implementations may take fewer arguments than the spec (pluggy)."""

    def __init__(self) -> None:
        self.ranks: list[int] = []

    @hookimpl
    def sr_kemi_modules_add(self) -> list[KemiExport]:
        return [export("mini", "ping", ping)]

    @hookimpl
    def child_init(self, rank: int) -> None:
        self.ranks.append(rank)


def ping(ctx: MsgContext) -> int:
    return 1


def test_every_hook_gets_the_core() -> None:
    core = Core(CoreConfig())
    loader = ModuleLoader(core, available={})
    rec, mini = Recorder(), Minimal()
    loader.register("rec", rec)
    loader.register("mini", mini)
    loader.init_all()
    loader.child_init_all(3)
    loader.destroy_all()
    assert [name for name, _ in rec.calls] == [
        "mod_register", "sr_kemi_modules_add", "sr_kemi_eng_register", "mod_init",
        "child_init", "mod_destroy"]
    assert all((arg is core) or arg == (core, 3) for _, arg in rec.calls)
    assert mini.ranks == [3]
    assert core.registry.lookup("mini", "ping") is not None
    assert core.loader is loader


class Tm:
    def has_transaction(self, ctx: MsgContext) -> bool:
        return False

    def t_reply(self, ctx: MsgContext, code: int, reason: str) -> int:
        return 1


def test_services_are_provided_once_and_required_by_protocol() -> None:
    core = Core(CoreConfig())
    assert core.service("tm", TmApi) is None
    with pytest.raises(ModuleError, match='loadmodule "tm.so"'):
        core.require("tm", TmApi)
    tm = Tm()
    core.provide("tm", tm)
    assert core.require("tm", TmApi) is tm
    assert core.services == {"tm": tm}
    with pytest.raises(TypeError):
        core.services["x"] = object()  # type: ignore[index]
    with pytest.raises(ModuleError, match="provided twice"):
        core.provide("tm", Tm())
    core.provide("rr", object())
    with pytest.raises(ModuleError, match="not a TmApi"):
        core.require("rr", TmApi)
