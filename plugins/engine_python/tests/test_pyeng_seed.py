"""The seed's Python example (examples/python/kamailio.py, verbatim) loads and routes."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

import attrs
import pytest

from kemi_core.api import KemiExport, MsgContext, export

SEED = Path(__file__).resolve().parents[3] / "examples" / "python" / "kamailio.py"  # the seed's example
# SHA-256 of the Python block of the seed document (Kamailio's "Configuration File Engines"
# page), taken when the example was copied from it.
SEED_SHA256 = "849915c67ab8759fef1eeab1503311201502a3a082b9d90fe867215b6a4d2538"


def test_the_copy_is_the_seeds_text_verbatim() -> None:
    assert hashlib.sha256(SEED.read_bytes()).hexdigest() == SEED_SHA256


@attrs.define
class RecordingTmDouble:
    """Test double for kemi_tm's KSR.tm: records armed callbacks; t_relay runs the branch route
    through core.run_route as the real tm does, then the armed onreply route, and returns 1."""

    events: list[Any]

    def exports(self) -> list[KemiExport]:
        def arm(kind: str) -> Any:
            def t_on(ctx: MsgContext, name: str) -> int:
                ctx.mod_state.setdefault("tm_double", {})[kind] = name
                self.events.append((f"t_on_{kind}", name))
                return 1

            return t_on

        def t_relay(ctx: MsgContext) -> int:
            armed = ctx.mod_state.get("tm_double", {})
            self.events.append(("t_relay", ctx.msg.ruri))
            branch = ctx.core.new_context(ctx.msg.copy(), ctx.rcv)
            self.events.append(("branch_result", ctx.core.run_route(armed["branch"], branch)))
            self.events.append(("onreply_result", ctx.core.run_route(armed["reply"], branch)))
            self.events.append(("failure_result", ctx.core.run_route(armed["failure"], branch)))
            return 1

        return [export("tm", "t_on_branch", arm("branch"), "s"),
                export("tm", "t_on_reply", arm("reply"), "s"),
                export("tm", "t_on_failure", arm("failure"), "s"),
                export("tm", "t_relay", t_relay)]


@attrs.define
class RecordingSlDouble:
    """Test double for kemi_sl's KSR.sl.send_reply: records (code, reason)."""

    events: list[Any]

    def exports(self) -> list[KemiExport]:
        def send_reply(ctx: MsgContext, code: int, reason: str) -> int:
            self.events.append(("send_reply", code, reason))
            ctx.replied = True
            return 1

        return [export("sl", "send_reply", send_reply, "is")]


def info_double(events: list[Any]) -> KemiExport:
    """Test double for the core's KSR.info: records the text."""
    def info(ctx: MsgContext, text: str) -> int:
        events.append(("info", text))
        return 1

    return export("", "info", info, "s")


def test_seed_script_loads_and_routes(pyenv: Any, tmp_path: Path,
                                      caplog: pytest.LogCaptureFixture) -> None:
    script = tmp_path / "kamailio.py"
    shutil.copy(SEED, script)
    events: list[Any] = []
    env = pyenv()
    exports = [info_double(events), *RecordingTmDouble(events).exports(),
               *RecordingSlDouble(events).exports()]
    env.start(script, exports)
    env.loader.child_init_all(1)
    assert events == [("info", "===== from Python mod init\n"),
                      ("info", "===== kamailio.__init__\n"),
                      ("info", "===== kamailio.child_init(1)\n")]
    events.clear()
    ctx = env.ctx()
    with caplog.at_level(logging.ERROR):
        assert env.core.run_route("ksr_request_route", ctx) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert events == [
        ("info", "===== request - from kamailio python script\n"),
        ("t_on_branch", "ksr_branch_route_one"),
        ("t_on_reply", "ksr_onreply_route_one"),
        ("t_on_failure", "ksr_failure_route_one"),
        ("send_reply", 100, "Trying"),
        ("t_relay", "sip:alice@127.0.0.1:5080"),
        ("info", "===== branch route - from kamailio python script\n"),
        ("branch_result", 1),
        ("info", "===== onreply route - from kamailio python script\n"),
        ("onreply_result", 1),
        ("info", "===== failure route - from kamailio python script\n"),
        ("failure_result", 1),
    ]
    assert ctx.msg.ruri == "sip:alice@127.0.0.1:5080"
    events.clear()
    assert env.core.run_route("ksr_reply_route", env.reply_ctx()) == 1
    assert events == [("info", "===== response - from kamailio python script\n")]


def test_seed_dump_obj_uses_router_logger(pyenv: Any, tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    script = tmp_path / "kamailio.py"
    shutil.copy(SEED, script)
    events: list[Any] = []
    env = pyenv()
    env.start(script, [info_double(events), *RecordingTmDouble(events).exports(),
                       *RecordingSlDouble(events).exports()])
    module = env.core.engine.image.module
    with caplog.at_level(logging.INFO, logger="kemi.script"):
        module.dumpObj(module.KSR.sl)
    assert any(r.getMessage().startswith("obj.send_reply = <function KSR.sl.send_reply")
               for r in caplog.records)
