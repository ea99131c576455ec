"""`kemi docs --stubs DIR` (the installed modules' real exports) lets mypy check routing scripts:
the seed's Python example and the app_python3s example pass, a misspelt KSR function fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kemi_core.testing.process import kemi_executable

from .conftest import REPO

EXAMPLES = {
    "python": REPO / "examples" / "python" / "kamailio.py",
    "python3s": REPO / "examples" / "python3s" / "kamailio.py",
}


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stubs") / "stubs"
    done = subprocess.run([*kemi_executable(), "docs", "--stubs", str(out)], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "wrote stubs for" in done.stdout
    assert (out / "KSR" / "__init__.pyi").is_file() and (out / "Router").is_dir()
    return out


def mypy(stubs: Path, script: Path) -> subprocess.CompletedProcess[str]:
    """mypy with the stubs found through MYPYPATH. The seed's methods carry no annotations, and
    mypy skips the bodies of unannotated functions unless told --check-untyped-defs."""
    env = dict(os.environ, MYPYPATH=str(stubs))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--check-untyped-defs", "--cache-dir", str(script.parent / ".mypy_cache"),
         "--no-error-summary", str(script)],
        capture_output=True, text=True, env=env, cwd=script.parent, timeout=300)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_mypy_accepts_example_script(stubs: Path, tmp_path: Path, name: str) -> None:
    script = tmp_path / "kamailio.py"
    script.write_text(EXAMPLES[name].read_text())
    result = mypy(stubs, script)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("name", "good", "bad", "error"), [
    ("python", "KSR.tm.t_relay()", "KSR.tm.t_relayy()", '"type[tm]" has no attribute "t_relayy"'),
    ("python", "KSR.sl.send_reply(500,", "KSR.sl.send_replay(500,", 'has no attribute "send_replay"'),
    ("python", 'KSR.info("===== request', 'KSR.inf("===== request', 'has no attribute "inf"'),
    ("python3s", "KSR.seturi(CALLEE)", "KSR.set_uri(CALLEE)", 'has no attribute "set_uri"'),
])
def test_mypy_rejects_misspelt_ksr_function(stubs: Path, tmp_path: Path, name: str, good: str,
                                            bad: str, error: str) -> None:
    text = EXAMPLES[name].read_text()
    assert text.count(good) >= 1
    script = tmp_path / "kamailio.py"
    script.write_text(text.replace(good, bad, 1))
    bad_line = next(i for i, line in enumerate(script.read_text().splitlines(), 1) if bad in line)
    result = mypy(stubs, script)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"kamailio.py:{bad_line}: error:" in result.stdout and error in result.stdout, result.stdout
