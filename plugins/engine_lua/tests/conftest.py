"""Fixtures for the app_lua tests: a Core, real SIP messages, scripts in tmp_path, engines.

``core``, ``calls`` and ``make_ctx`` are the engines' shared fixtures (kemi_core.testing).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kemi_core.api import Core
from kemi_core.testing import engine_fixtures, script_writer
from kemi_engine_lua import LuaEngine, LuaSettings

core, calls, make_ctx = engine_fixtures()


@pytest.fixture
def write_script(tmp_path: Path) -> Callable[..., str]:
    return script_writer(tmp_path, "script.lua")


@pytest.fixture
def make_engine(core: Core, write_script: Callable[..., str]) -> Callable[..., LuaEngine]:
    """An engine running ``text`` (loaded); extra keyword args go to LuaSettings."""

    def make(text: str, **kw: Any) -> LuaEngine:
        engine = LuaEngine(core, LuaSettings(scripts=(write_script(text),), **kw))
        engine.load()
        core.engine = engine
        return engine
    return make


@pytest.fixture
def lua_eval() -> Callable[[LuaEngine, str], Any]:
    """Evaluate a Lua expression in an engine's current runtime."""

    def evaluate(engine: LuaEngine, expr: str) -> Any:
        assert engine.state is not None
        return engine.state.runtime.eval(expr)
    return evaluate
