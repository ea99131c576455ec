"""The typer CLI: version, check (file:line errors), modules, docs, rpc errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kemi_core import __version__
from kemi_core.cli import app
from kemi_core.kemi.docs import summary
from kemi_core.testing.process import kemi_executable

runner = CliRunner()


def test_version() -> None:
    out = runner.invoke(app, ["version"])
    assert out.exit_code == 0 and out.stdout.startswith("kemi ")


@pytest.mark.parametrize("flag", ["--version", "-v", "-V"])
def test_version_flag(flag: str) -> None:
    out = subprocess.run([*kemi_executable(), flag], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"kemi {__version__} (Python ") and out.stdout.count("\n") == 1


def test_check_reports_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "k.cfg"
    cfg.write_text('#!KAMAILIO\ndebug=2\nchidren=4\nloadmodule "sl.so"\n')
    out = runner.invoke(app, ["check", "-f", str(cfg)])
    assert out.exit_code == 1
    assert f"{cfg}:3:" in out.output and "chidren" in out.output


def test_check_refuses_unknown_engine_and_missing_module(tmp_path: Path) -> None:
    cfg = tmp_path / "k.cfg"
    cfg.write_text('#!KAMAILIO\nloadmodule "sl.so"\ncfgengine "lua"\n')
    out = runner.invoke(app, ["check", "-f", str(cfg)])
    assert out.exit_code == 1 and f"{cfg}:3:" in out.output and "'lua' is not registered" in out.output
    cfg.write_text('#!KAMAILIO\nloadmodule "nosuch.so"\n')
    out = runner.invoke(app, ["check", "-f", str(cfg)])
    assert out.exit_code == 1 and "pip install kemi-nosuch" in out.output


def test_check_ok_native(tmp_path: Path) -> None:
    cfg = tmp_path / "k.cfg"
    cfg.write_text('#!KAMAILIO\nlisten=udp:127.0.0.1:5099\nloadmodule "sl.so"\n'
                   'request_route {\n  sl_send_reply("200", "OK");\n}\n')
    out = runner.invoke(app, ["check", "-f", str(cfg)])
    assert out.exit_code == 0, out.output
    assert "engine native" in out.output


@pytest.mark.usefixtures("test_plugins")
def test_docs_json_lists_every_export_with_kinds() -> None:
    out = runner.invoke(app, ["docs", "--format", "json"])
    assert out.exit_code == 0
    docs = json.loads(out.stdout)
    by_name = {(d["module"], d["name"]): d for d in docs}
    sreply = by_name[("sl", "send_reply")]
    assert sreply["return"] == "int"
    assert [p["kind"] for p in sreply["params"]] == ["int", "str"]
    assert ("", "info") in by_name and ("testmod", "six") in by_name


def test_modules_lists_distributions() -> None:
    out = runner.invoke(app, ["modules"])
    assert out.exit_code == 0
    assert "kemi-sl" in out.stdout and "engines=lua" in out.stdout


def test_docs_markdown_keeps_whole_sentences() -> None:
    out = runner.invoke(app, ["docs"])
    assert out.exit_code == 0
    line = next(x for x in out.stdout.splitlines() if "KSR.log(" in x)
    # The docstring's first paragraph wraps over two source lines; both halves are there.
    assert line.endswith('("dbg", "info", "notice", "warn", "err", "crit"); any other level logs '
                         'at "err", as Kamailio does.')


def test_docs_summary_is_the_first_paragraph_on_one_line() -> None:
    doc = "Send a reply\nstatelessly.\n  \nDetails that stay\nin the docstring."
    assert summary(doc) == "Send a reply statelessly."


def _kemi_modules(pythonpath: list[str]) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath))
    out = subprocess.run([*kemi_executable(), "modules"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_test_modules_are_the_suites_own(test_plugins: list[str]) -> None:
    """The suite provides tests/plugins/ to its own kemi processes (PYTHONPATH); the
    environment's `kemi modules` still lists real modules only: nothing was installed."""
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                 if p and p not in test_plugins]
    suite = _kemi_modules(test_plugins + inherited)
    assert "kemi-testmods" in suite and "app_replier" in suite
    users = _kemi_modules(inherited)
    assert "kemi-sl" in users
    assert "kemi-testmods" not in users and "testmod" not in users and "replier" not in users


def test_rpc_unreachable_socket_exits_nonzero(tmp_path: Path) -> None:
    out = runner.invoke(app, ["rpc", "-s", f"unix:{tmp_path}/none", "core.version"])
    assert out.exit_code == 2


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("example", ["lua", "python", "python3s"])
def test_check_an_example_by_absolute_path_from_elsewhere(example: str, tmp_path: Path) -> None:
    """The examples name their script relative to the config's directory: `kemi check` works
    from any working directory."""
    cfg = EXAMPLES / example / "kamailio.cfg"
    out = subprocess.run([*kemi_executable(), "check", "-f", str(cfg)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{cfg}: ok")


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_missing_script_names_the_modparam_line(command: str, tmp_path: Path) -> None:
    cfg = tmp_path / "etc" / "kamailio.cfg"
    cfg.parent.mkdir()
    cfg.write_text('#!KAMAILIO\nlisten=udp:127.0.0.1:5099\nloadmodule "app_lua.so"\n\n'
                   'modparam("app_lua", "load", "routing.lua")\ncfgengine "lua"\n')
    out = subprocess.run([*kemi_executable(), command, "-f", str(cfg)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr == (
        f"kemi: {cfg}:5: app_lua.load: file 'routing.lua' not found (looked in the config's "
        f"directory {cfg.parent} or the working directory {tmp_path})\n")
