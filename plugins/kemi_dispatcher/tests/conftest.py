"""The dispatcher tests' config writer (kemi_dispatcher.testing has the texts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_dispatcher.testing import LIST, Write, write_config


@pytest.fixture
def ds_cfg(tmp_path: Path) -> Write:
    """``ds_cfg(list_text=LIST, extra="modparam(...)")`` writes the trio, returns the cfg."""
    def write(list_text: str = LIST, extra: str = "") -> Path:
        return write_config(tmp_path, list_text, extra)
    return write
