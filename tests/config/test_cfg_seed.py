"""The seed's two example kamailio.cfg files (copied verbatim into data/) parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.config import parse_config
from kemi_core.config.model import ListenAddr

DATA = Path(__file__).parent / "data"
SEED_MODULES = ["mi_fifo", "kex", "tm", "tmx", "sl", "pv", "maxfwd", "textops", "xlog", "ctl",
                "mi_rpc", "debugger"]


def line_of(path: Path, text: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip() == text:
            return i
    raise AssertionError(f"{text!r} not in {path}")


@pytest.mark.parametrize("name, engine, debug, app", [
    ("seed_lua.cfg", "lua", 3, "app_lua"),
    ("seed_python.cfg", "python", 4, "app_python"),
])
def test_seed_globals(name: str, engine: str, debug: int, app: str,
                      caplog: pytest.LogCaptureFixture) -> None:
    path = DATA / name
    cfg = parse_config(path)
    assert cfg.source == str(path)
    assert cfg.debug == debug
    assert cfg.log_stderror is True
    assert cfg.fork is True
    assert cfg.children == 2
    assert (cfg.memdbg, cfg.memlog) == (5, 5)
    assert cfg.auto_aliases is False
    assert cfg.listen == [ListenAddr("udp", "127.0.0.1", 5060)]
    assert cfg.mpath == "modules"
    assert [m.name for m in cfg.loadmodules] == [*SEED_MODULES, app]
    assert cfg.loadmodules[0].raw == "mi_fifo.so"
    assert cfg.loadmodules[0].line == line_of(path, 'loadmodule "mi_fifo.so"')
    assert cfg.loadmodules[0].file == str(path)
    assert cfg.cfgengine == engine
    assert cfg.engine_name == engine
    assert cfg.cfgengine_line is not None
    assert cfg.cfgengine_line.line == line_of(path, f'cfgengine "{engine}"')
    assert cfg.routes == []
    assert cfg.ignored == {}
    assert not [r for r in caplog.records if r.name == "kemi.config"]


def test_seed_lua_modparams() -> None:
    path = DATA / "seed_lua.cfg"
    cfg = parse_config(path)
    got = [(m.module, m.name, m.value) for m in cfg.modparams]
    assert got == [
        ("mi_fifo", "fifo_name", "/var/run/kamailio/kamailio_fifo"),
        ("tm", "failure_reply_mode", 3),
        ("tm", "fr_timer", 30000),
        ("tm", "fr_inv_timer", 120000),
        ("debugger", "cfgtrace", 1),
        ("app_lua", "load", "/etc/kamailio/kamailio.lua"),
        ("app_lua", "register", "maxfwd"),
        ("app_lua", "register", "sl"),
    ]
    load = cfg.modparams[5]
    assert load.line == line_of(path, 'modparam("app_lua", "load", "/etc/kamailio/kamailio.lua")')


def test_seed_python_modparams() -> None:
    cfg = parse_config(DATA / "seed_python.cfg")
    assert cfg.modparams[0].value == "/tmp/kamailio_fifo"
    last = cfg.modparams[-1]
    assert (last.module, last.name, last.value) == (
        "app_python", "script_name", "/etc/kamailio/kamailio.py")


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(("seed", "example", "changed"), [
    ("seed_lua.cfg", "lua/kamailio.cfg", {
        'modparam("mi_fifo", "fifo_name", "kamailio_fifo")',
        'modparam("app_lua", "load", "kamailio.lua")'}),
    ("seed_python.cfg", "python/kamailio.cfg", {
        'modparam("mi_fifo", "fifo_name", "kamailio_fifo")',
        'modparam("app_python", "script_name", "kamailio.py")'}),
])
def test_examples_are_the_seeds_configs_but_for_these_lines(seed: str, example: str,
                                                            changed: set[str]) -> None:
    """The examples run the seed's configs; only the lines that name files differ: the script
    next to the config instead of /etc/kamailio, the FIFO in kemi's runtime directory instead of
    Kamailio's (so an example starts beside a running Kamailio and never touches its files)."""
    seed_lines = (DATA / seed).read_text().splitlines()
    example_lines = (EXAMPLES / example).read_text().splitlines()
    assert len(seed_lines) == len(example_lines)
    differ = {new for old, new in zip(seed_lines, example_lines, strict=True) if old != new}
    assert differ == changed
