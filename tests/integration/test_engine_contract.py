"""One engine-call contract in every engine, through the real dispatcher.

The normaliser: an int export returning True, False, None, floats, negative or zero ints gives
the script the same number in Lua, Python and native cfg (Kamailio's meaning: > 0 true, < 0
false, 0 stops a native script). A script fault in any engine is answered 500 and recorded with
its file:line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import kemi_engine_lua
import kemi_sl
from kemi_core.api import (
    CfgFunction,
    Core,
    EngineSpec,
    KemiExport,
    MsgContext,
    RecvInfo,
    export,
    hookimpl,
)
from kemi_core.testing import attach_dispatcher, offline_core, request
from kemi_engine_python.modules import app_python3s

#: What the test export returns for each R-URI user, and the int every engine must see.
TABLE: dict[str, tuple[Any, int]] = {
    "true": (True, 1),
    "false": (False, -1),
    "none": (None, 1),
    "two": (2, 2),
    "neg": (-3, -3),
    "zero": (0, 0),
    "float2": (2.0, 2),
    "half": (0.5, 1),
    "neghalf": (-0.5, -1),
    "float0": (0.0, 0),
    "text": ("text", 1),
    "empty": ("", -1),
}

RCV = RecvInfo("udp", "127.0.0.1", 40000, "127.0.0.1", 5060)


def ret(ctx: MsgContext, which: str) -> int:
    """Return the raw value of TABLE[which] (not an int for most rows)."""
    return TABLE[which][0]  # type: ignore[no-any-return]


def fail(ctx: MsgContext) -> int:
    """A KEMI function that fails."""
    raise RuntimeError("module function broke")


class TestModule:
    """A module exporting ``ret`` to KEMI (Lua, Python) and to native cfg."""

    @hookimpl
    def mod_register(self, core: Core) -> None:
        core.add_cfg_function(CfgFunction("t", "t_ret", ret, 1, 1))

    @hookimpl
    def sr_kemi_modules_add(self) -> list[KemiExport]:
        return [export("t", "ret", ret), export("t", "fail", fail)]


LUA = """
function ksr_request_route()
  local which = KSR.pv.get("$rU")
  if which == "fault" then error("lua route broke") end
  if which == "modfault" then KSR.t.fail() end
  local r = KSR.t.ret(which)
  KSR.sl.send_reply(200, "R" .. tostring(r))
end
"""

PYTHON = """
import KSR

def ksr_request_route():
    which = KSR.pv.get("$rU")
    if which == "fault":
        return 1 // 0
    if which == "modfault":
        KSR.t.fail()
    r = KSR.t.ret(which)
    KSR.sl.send_reply(200, "R%d" % r)
"""

NATIVE = """
request_route {
    if ($rU == "fault") {
        $var(x) = 1 / 0;
    }
    t_ret($rU);
    $var(reason) = "R" + $rc;
    sl_send_reply("200", $var(reason));
}
"""


def _server(engine: str, tmp_path: Path) -> tuple[Any, Any, Core]:
    """A core with sl, the test module and ``engine`` as its cfgengine, and the real
    dispatcher a worker runs."""
    mods: list[tuple[str, Any]] = [("sl", kemi_sl), ("t", TestModule())]
    params: dict[tuple[str, str], Any] = {}
    if engine == "lua":
        (tmp_path / "route.lua").write_text(LUA)
        mods.append(("app_lua", kemi_engine_lua))
        params[("app_lua", "load")] = str(tmp_path / "route.lua")
    elif engine == "python":
        (tmp_path / "route.py").write_text(PYTHON)
        mods.append(("app_python3s", app_python3s))
        params[("app_python3s", "load")] = str(tmp_path / "route.py")
    core, transport = offline_core(*mods, params=params)
    if engine == "native":
        from kemi_core.config.parser import parse_config_text
        from kemi_core.native.engine import NativeEngine

        blocks = parse_config_text(NATIVE, str(tmp_path / "kamailio.cfg")).routes
        spec = EngineSpec("native", lambda c: NativeEngine(c, blocks))
    else:
        spec = core.engine_specs[engine]
    core.use_engine(spec)
    core.engine = core.new_engine()  # what a worker runs
    return attach_dispatcher(core), transport, core


def _answer(dispatcher: Any, transport: Any, user: str) -> tuple[int, str] | None:
    transport.sent.clear()
    dispatcher.on_data(request("OPTIONS", f"sip:{user}@127.0.0.1", 40000), RCV)
    if not transport.sent:
        return None
    msg = transport.sent[-1].msg
    return msg.status, msg.reason


@pytest.mark.parametrize("engine", ["lua", "python", "native"])
def test_the_normaliser_table_is_the_same_in_every_engine(engine: str, tmp_path: Path) -> None:
    dispatcher, transport, _ = _server(engine, tmp_path)
    seen = {which: _answer(dispatcher, transport, which) for which in TABLE}
    expected: dict[str, tuple[int, str] | None] = {
        which: (200, f"R{n}") for which, (_, n) in TABLE.items()}
    if engine == "native":
        # 0 stops a native script (Kamailio): no reply; Lua and Python scripts see the 0.
        expected["zero"] = expected["float0"] = None
    assert seen == expected


@pytest.mark.parametrize("engine", ["lua", "python", "native"])
def test_a_script_fault_is_answered_500_with_its_place(engine: str, tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    dispatcher, transport, _ = _server(engine, tmp_path)
    with caplog.at_level(logging.ERROR, logger="kemi.script"):
        assert _answer(dispatcher, transport, "fault") == (500, "Server Internal Error")
    script = {"lua": "route.lua:4:", "python": "route.py:7:", "native": "kamailio.cfg:4:"}[engine]
    assert script in caplog.text
    assert dispatcher.stats.script_errors.value == 1
    # The worker goes on: the next message is routed as usual.
    assert _answer(dispatcher, transport, "two") == (200, "R2")


@pytest.mark.parametrize("engine", ["lua", "python"])
def test_a_failing_kemi_function_faults_the_route_with_its_traceback(
        engine: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dispatcher, transport, _ = _server(engine, tmp_path)
    with caplog.at_level(logging.ERROR, logger="kemi.script"):
        assert _answer(dispatcher, transport, "modfault") == (500, "Server Internal Error")
    assert "module function broke" in caplog.text
    assert "RuntimeError" in caplog.text


@pytest.mark.parametrize(("value", "expected"), [(v, n) for v, n in TABLE.values()] + [
    (float("nan"), -1), (2**70, 2**70), (1e30, 2**63 - 1), (-1e30, -(2**63)), (b"x", 1)])
def test_normalize_result_table(value: Any, expected: int) -> None:
    from kemi_core.api import normalize_result

    assert normalize_result(value) == expected
