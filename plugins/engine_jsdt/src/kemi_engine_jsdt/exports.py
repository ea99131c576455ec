"""What app_jsdt offers routing scripts besides the engine: Kamailio's ``KSR.app_jsdt.*`` and the
``jsdt_*`` functions of kamailio.cfg.

``run``/``run_p1..3`` call a function of the file given by ``load`` and ``runstring`` runs text
in its context: the cfgengine's own when that is ``jsdt``, else a context this module loads in
each process on first use. ``dostring``/``dofile`` run in a second context without that file
(Kamailio's "first" context). Each returns 1, or -1 after logging a script error;
``KSR.x.exit()``/``KSR.x.drop()`` inside end the calling route too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kemi_core.api import (
    SCRIPT_FAULT,
    CfgFunction,
    KemiExport,
    ScriptError,
    export,
    read_script,
    script_log,
)
from kemi_engine_jsdt.engine import JsdtEngine, JsdtSettings

if TYPE_CHECKING:
    from kemi_core.api import Core, MsgContext

log = logging.getLogger("kemi.app_jsdt")


class JsdtCalls:
    """The exports' engines in this process (built on first use)."""

    def __init__(self, core: Core, module: str, settings: Any) -> None:
        self.core = core
        self.module = module
        self._settings = settings  # () -> JsdtSettings
        self._own: JsdtEngine | None = None
        self._scratch: JsdtEngine | None = None

    def loaded(self) -> JsdtEngine:
        engine = self.core.engine
        if isinstance(engine, JsdtEngine) and engine.core is self.core:
            return engine
        if self._own is None:
            settings: JsdtSettings = self._settings()
            if not settings.script:
                raise ScriptError("app_jsdt: no script is loaded (modparam load)")
            self._own = JsdtEngine(self.core, JsdtSettings(script=settings.script,
                                                           request_route=""))
        return self._own

    def scratch(self) -> JsdtEngine:
        if self._scratch is None:
            self._scratch = JsdtEngine(self.core, JsdtSettings(script="", request_route=""))
        return self._scratch

    @staticmethod
    def _guard(what: str, call: Any, *args: Any) -> int:
        try:
            call(*args)
        except ScriptError as exc:
            script_log.error("app_jsdt: %s: %s", what, exc, extra=SCRIPT_FAULT)
            return -1
        return 1

    # ---- KSR.app_jsdt.* -----------------------------------------------------------------
    def run(self, ctx: MsgContext, func: str) -> int:
        """Call the function ``func`` of the loaded JavaScript file."""
        return self._guard(f"run {func}", self.loaded().call, func, ctx)

    def run_p1(self, ctx: MsgContext, func: str, p1: str) -> int:
        """Call ``func`` of the loaded file with one string argument."""
        return self._guard(f"run {func}", self.loaded().call, func, ctx, p1)

    def run_p2(self, ctx: MsgContext, func: str, p1: str, p2: str) -> int:
        """Call ``func`` of the loaded file with two string arguments."""
        return self._guard(f"run {func}", self.loaded().call, func, ctx, p1, p2)

    def run_p3(self, ctx: MsgContext, func: str, p1: str, p2: str, p3: str) -> int:
        """Call ``func`` of the loaded file with three string arguments."""
        return self._guard(f"run {func}", self.loaded().call, func, ctx, p1, p2, p3)

    def runstring(self, ctx: MsgContext, script: str) -> int:
        """Run JavaScript text in the context of the loaded file."""
        return self._guard("runstring", self.loaded().evaluate, script, ctx)

    def dostring(self, ctx: MsgContext, script: str) -> int:
        """Run JavaScript text in a context of its own (not the loaded file's)."""
        return self._guard("dostring", self.scratch().evaluate, script, ctx, "jsdt_dostring")

    def dofile(self, ctx: MsgContext, path: str) -> int:
        """Read and run a JavaScript file in a context of its own (not the loaded file's)."""
        try:
            text = read_script(path, "JavaScript file")
        except ScriptError as exc:
            script_log.error("app_jsdt: dofile: %s", exc)
            return -1
        return self._guard("dofile", self.scratch().evaluate, text, ctx, path)

    def exports(self) -> list[KemiExport]:
        m = self.module
        return [export(m, "run", self.run, "s"), export(m, "run_p1", self.run_p1, "ss"),
                export(m, "run_p2", self.run_p2, "sss"), export(m, "run_p3", self.run_p3, "ssss"),
                export(m, "runstring", self.runstring, "s"),
                export(m, "dostring", self.dostring, "s"), export(m, "dofile", self.dofile, "s")]

    # ---- kamailio.cfg: jsdt_run("f", ...), jsdt_runstring, jsdt_dostring, jsdt_dofile ---------
    def _cfg_run(self, ctx: MsgContext, func: str, *params: str) -> int:
        return self._guard(f"run {func}", self.loaded().call, func, ctx, *params)

    def cfg_functions(self) -> list[CfgFunction]:
        m = self.module
        return [
            CfgFunction(m, "jsdt_run", self._cfg_run, 1, 4,
                        doc="Call a function of the loaded JavaScript file (up to 3 str params)."),
            CfgFunction(m, "jsdt_runstring", self.runstring, 1, 1,
                        doc="Run JavaScript text in the loaded file's context."),
            CfgFunction(m, "jsdt_dostring", self.dostring, 1, 1,
                        doc="Run JavaScript text in a context of its own."),
            CfgFunction(m, "jsdt_dofile", self.dofile, 1, 1,
                        doc="Run a JavaScript file in a context of its own."),
        ]
