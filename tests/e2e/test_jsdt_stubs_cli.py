"""``kemi docs --stubs DIR`` writes KSR.d.ts (app_jsdt's write_script_stubs hook) from the
installed modules' real exports: the TypeScript compiler accepts Kamailio's official JS routing
file with it and rejects a misspelt KSR function or a wrong argument. Without tsc these skip;
plugins/engine_jsdt/tests/test_jsdt_stubs.py parses the declarations instead."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kemi_core.testing.process import kemi_executable

OFFICIAL = Path("/usr/share/doc/kamailio/examples/kemi/kamailio-basic-kemi-jsdt.js")
TSC_ARGS = ["--noEmit", "--allowJs", "--checkJs", "--target", "es2020", "--pretty", "false"]


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stubs")
    done = subprocess.run([*kemi_executable(), "docs", "--stubs", str(out)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    path = out / "KSR.d.ts"
    assert path.is_file()
    return path


def tsc() -> list[str] | None:
    found = shutil.which("tsc")
    return [found] if found else None


def compile_js(stubs: Path, script: Path) -> subprocess.CompletedProcess[str]:
    command = tsc()
    assert command is not None
    return subprocess.run([*command, *TSC_ARGS, str(stubs), str(script)], capture_output=True,
                          text=True, timeout=300, cwd=script.parent)


def installed_modules(stubs: Path) -> set[str]:
    return set(re.findall(r"^    (\w+): \w+Module;$", stubs.read_text(), re.M))


@pytest.mark.skipif(not OFFICIAL.exists(), reason="Debian's kamailio package is not installed")
@pytest.mark.skipif(tsc() is None, reason="no TypeScript compiler (npm install -g typescript)")
def test_tsc_accepts_the_official_js_file(stubs: Path, tmp_path: Path) -> None:
    script = tmp_path / "kamailio.js"
    script.write_text(OFFICIAL.read_text())
    result = compile_js(stubs, script)
    errors = [ln for ln in result.stdout.splitlines() if ": error " in ln]
    # A module of the official example that is not installed here is the one thing tsc may
    # name (KSR.auth, KSR.nathelper ... until their distributions are installed).
    used = set(re.findall(r"KSR\.(\w+)\.", OFFICIAL.read_text()))
    missing = used - installed_modules(stubs)
    expected = re.compile(r"Property '(\w+)' does not exist on type 'Root'")
    # Kamailio 5.6 has no KSR.hdr.append_hf either (its app_jsdt.api_list): the official
    # file's foreign-domain branch fails there as here.
    known = "Property 'append_hf' does not exist on type 'hdrModule'"
    unexplained = [e for e in errors if known not in e
                   and not ((m := expected.search(e)) and m.group(1) in missing)]
    assert unexplained == [], result.stdout


@pytest.mark.skipif(tsc() is None, reason="no TypeScript compiler (npm install -g typescript)")
@pytest.mark.parametrize(("bad", "error"), [
    ("KSR.tm.t_relayy();", "Property 't_relayy' does not exist on type 'tmModule'"),
    ('KSR.sl.send_reply("404");', "Expected 2 arguments, but got 1"),
    ('KSR.sl.send_reply("404", "Not Found");', "not assignable to parameter of type 'number'"),
    ('KSR.inf("x");', "Property 'inf' does not exist on type 'Root'"),
])
def test_tsc_rejects_a_misspelt_function_or_wrong_arguments(stubs: Path, tmp_path: Path,
                                                            bad: str, error: str) -> None:
    good = tmp_path / "good.js"
    good.write_text("function ksr_request_route() {\n  KSR.sl.send_reply(404, 'Not Found');\n"
                    "  if (KSR.tm.t_relay() < 0) { KSR.x.exit(); }\n}\n")
    assert compile_js(stubs, good).returncode == 0
    script = tmp_path / "bad.js"
    script.write_text(f"function ksr_request_route() {{\n  {bad}\n}}\n")
    result = compile_js(stubs, script)
    assert result.returncode != 0
    assert "bad.js(2," in result.stdout and error in result.stdout, result.stdout
