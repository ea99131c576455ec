"""``kemi new module`` / ``kemi new engine``: the written distributions pip-install into a
throwaway venv at once and their own tests pass there (loading them through the entry point
pip wrote)."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kemi_core.cli import app

runner = CliRunner()


def _throwaway_venv(where: Path) -> Path:
    """A venv without pip whose interpreter also sees this environment's packages (kemi-core,
    its modules, pytest, setuptools) and nothing it installs leaks back here."""
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(site, "kemi-dev-environment.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


def test_new_module_and_engine_install_and_pass_their_tests(tmp_path: Path) -> None:
    for kind, name in (("module", "hello_world"), ("engine", "rules")):
        out = runner.invoke(app, ["new", kind, name, "--dir", str(tmp_path)])
        assert out.exit_code == 0, out.output
    hello, rules = tmp_path / "kemi-hello-world", tmp_path / "kemi-rules"
    assert (hello / "src" / "kemi_hello_world" / "__init__.py").is_file()
    assert 'hello_world = "kemi_hello_world"' in (hello / "pyproject.toml").read_text()
    assert 'app_rules = "kemi_rules"' in (rules / "pyproject.toml").read_text()
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(hello), str(rules)],
                          capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    python = _throwaway_venv(tmp_path)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-build-isolation", "-e", str(hello), "-e", str(rules)],
                   check=True, timeout=300)
    run = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(hello / "tests"), str(rules / "tests")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "3 passed" in run.stdout
    # Nothing reached this environment: the throwaway venv had it all.
    from kemi_core.testing import installed_modules

    assert "hello_world" not in installed_modules() and "app_rules" not in installed_modules()


@pytest.mark.parametrize("args", [["new", "module", "Bad-Name"], ["new", "engine", "9lives"]])
def test_bad_names_are_refused(args: list[str], tmp_path: Path) -> None:
    out = runner.invoke(app, [*args, "--dir", str(tmp_path)])
    assert out.exit_code == 1 and "is no module name" in out.output


def test_an_existing_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "kemi-hello").mkdir()
    out = runner.invoke(app, ["new", "module", "hello", "--dir", str(tmp_path)])
    assert out.exit_code == 1 and "exists already" in out.output
