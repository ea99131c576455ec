"""Fixtures for the app_jsdt tests: a Core, real SIP messages, scripts in tmp_path, engines.

``core``, ``calls`` and ``make_ctx`` are the engines' shared fixtures (kemi_core.testing).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kemi_core.api import Core
from kemi_core.testing import engine_fixtures, script_writer
from kemi_engine_jsdt import JsdtEngine, JsdtSettings

core, calls, make_ctx = engine_fixtures()


@pytest.fixture
def write_script(tmp_path: Path) -> Callable[..., str]:
    return script_writer(tmp_path, "script.js")


@pytest.fixture
def make_engine(core: Core, write_script: Callable[..., str]) -> Callable[..., JsdtEngine]:
    """An engine running ``text`` (loaded and made the core's engine)."""

    def make(text: str, **kw: Any) -> JsdtEngine:
        engine = JsdtEngine(core, JsdtSettings(script=write_script(text), **kw))
        engine.load()
        core.engine = engine
        return engine
    return make
