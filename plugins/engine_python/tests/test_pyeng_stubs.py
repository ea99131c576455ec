"""Generated typing stubs: mypy accepts the seed's script and catches misspelt KSR calls."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kemi_core.api import KemiRegistry, ReturnKind, export
from kemi_engine_python.stubs import write_stubs

SEED = Path(__file__).resolve().parents[3] / "examples" / "python" / "kamailio.py"  # the seed's example


def _fn0(ctx: object) -> int:
    return 1


def _info(ctx: object, text: str) -> int:
    """Log a message at INFO level."""
    return 1


def _send_reply(ctx: object, code: int, reason: str) -> int:
    return 1


def _name(ctx: object, name: str) -> int:
    return 1


def _get(ctx: object, name: str) -> str | int | None:
    return None


def _is(ctx: object, idx: int) -> bool:
    return True


def registry() -> KemiRegistry:
    reg = KemiRegistry()
    reg.add([
        export("", "info", _info, "s"),
        export("tm", "t_relay", _fn0),
        export("tm", "t_on_branch", _name, "s"),
        export("tm", "t_on_reply", _name, "s"),
        export("tm", "t_on_failure", _name, "s"),
        export("sl", "send_reply", _send_reply, "is"),
        export("pv", "get", _get, "s", ReturnKind.XVAL),
        export("x", "exit", _fn0, "", ReturnKind.NONE),
        export("kx", "isflagset", _is, "i", ReturnKind.BOOL),
    ])
    return reg


def run_mypy(stubs: Path, script: Path) -> subprocess.CompletedProcess[str]:
    config = stubs.parent / "mypy.ini"
    config.write_text("[mypy]\ncheck_untyped_defs = True\n")
    env = dict(os.environ, MYPYPATH=str(stubs))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir",
         str(stubs.parent / ".mypy_cache"), "--no-error-summary", str(script)],
        capture_output=True, text=True, env=env, cwd=stubs.parent, timeout=300)


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    out = tmp_path / "stubs"
    written = write_stubs(registry(), out)
    assert out / "KSR" / "__init__.pyi" in written and out / "KSR.lua" in written
    return out


def test_mypy_accepts_the_seed_script(stubs: Path) -> None:
    script = stubs.parent / "kamailio.py"
    shutil.copy(SEED, script)
    result = run_mypy(stubs, script)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("line", "error"), [
    ('KSR.tm.t_relayy()', 'has no attribute "t_relayy"'),
    ('KSR.inf("x")', 'has no attribute "inf"'),
    ('KSR.sl.send_reply("100", "Trying")', 'incompatible type "str"; expected "int"'),
    ('Logger.LM_INFOO("x")', 'has no attribute "LM_INFOO"'),
    ('x: str = KSR.pv.get("$ru")', 'Incompatible types in assignment'),
])
def test_mypy_rejects_bad_calls(stubs: Path, line: str, error: str) -> None:
    script = stubs.parent / "bad.py"
    script.write_text(
        "import KSR\nimport Router.Logger as Logger\n\n"
        f"class H:\n    def ksr_request_route(self, msg):\n        {line}\n        return 1\n")
    result = run_mypy(stubs, script)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "bad.py:6: error" in result.stdout and error in result.stdout, result.stdout


def test_python_stub_text(stubs: Path) -> None:
    text = (stubs / "KSR" / "__init__.pyi").read_text()
    assert "def info(text: str, /) -> int:" in text
    assert '"""Log a message at INFO level."""' in text
    assert "class sl:" in text and "def send_reply(code: int, reason: str, /) -> int: ..." in text
    assert "def get(name: str, /) -> str | int | None: ..." in text
    assert "def isflagset(idx: int, /) -> bool: ..." in text
    assert "def exit() -> None: ..." in text


def test_lua_stub_text(stubs: Path) -> None:
    text = (stubs / "KSR.lua").read_text()
    assert text.startswith("---@meta\n")
    assert "---@class KSR\n---@field kx KSR.kx\n" in text
    assert ("---@class KSR.sl\nKSR.sl = {}\n\n---@param code integer\n---@param reason string\n"
            "---@return integer\nfunction KSR.sl.send_reply(code, reason) end\n") in text
    assert "---@return string|integer|nil\nfunction KSR.pv.get(name) end" in text
    assert "---@return boolean\nfunction KSR.kx.isflagset(idx) end" in text
    assert "---Log a message at INFO level.\n---@param text string\n---@return integer\n" \
           "function KSR.info(text) end" in text
    assert "function KSR.x.exit() end" in text and "---@return nil" not in text
