"""The three module names ``loadmodule`` accepts: app_python, app_python3 and app_python3s.

One implementation, three plugin objects. app_python and app_python3 run class-style scripts
(``mod_init()`` returns the handler); app_python3s runs function-style scripts. All register the
config engine "python" and the RPC commands app_python.reload / app_python.api_list.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from kemi_core.api import (
    REQUEST_ROUTE,
    CfgFunction,
    EngineSpec,
    KemiExport,
    ModuleError,
    ScriptError,
    ScriptExit,
    export,
    hookimpl,
    normalize_result,
)
from kemi_engine_python.engine import PythonEngine, PythonState
from kemi_engine_python.rpc import register_rpcs
from kemi_engine_python.script import ScriptOptions

script_log = logging.getLogger("kemi.script")

if TYPE_CHECKING:
    from kemi_core.api import Core, MsgContext

VARIANTS = ("app_python", "app_python3", "app_python3s")


class PythonEngineModule:
    """A pluggy plugin object for one of the module names."""

    def __init__(self, name: str) -> None:
        if name not in VARIANTS:
            raise ValueError(f"unknown app_python variant {name!r}")
        self.name = name
        self.function_style = name == "app_python3s"
        #: KSR module name of the exec functions (Kamailio: app_python for both class styles).
        self.ksr_module = "app_python3s" if self.function_style else "app_python"
        self.core: Core | None = None
        self.state: PythonState | None = None

    def __repr__(self) -> str:
        return f"<kemi module {self.name}>"

    # ---- hooks -------------------------------------------------------------------------
    @hookimpl
    def mod_register(self, core: Core) -> None:
        for other in VARIANTS:
            if other != self.name and other in core.loaded_modules:
                raise ModuleError(f"{self.name} and {other} both provide the \"python\" engine; "
                                  "load only one of them")
        m = self.name
        core.declare_param(m, "load", str, "", existing_file=True,
                           doc="Path of the Python routing script (a relative path is read "
                               "against the config file's directory).")
        if self.function_style:
            core.declare_param(m, "script_init", str, "",
                               doc="Function run once when the script is loaded "
                                   "(default: ksr_script_init when the script defines it).")
            core.declare_param(m, "script_child_init", str, "",
                               doc="Function run with the rank in each worker "
                                   "(default: ksr_script_child_init when defined).")
        else:
            core.declare_param(m, "script_name", str, "", existing_file=True,
                               doc="Path of the Python routing script (same as load).")
            core.declare_param(m, "mod_init_function", str, "mod_init",
                               doc="Script function returning the handler object.")
            core.declare_param(m, "child_init_method", str, "child_init",
                               doc="Handler method called with the rank in each worker.")
        self.core = core
        self.state = None
        register_rpcs(core, self)
        core.add_cfg_function(CfgFunction(m, "python_exec", self._cfg_exec, 1, 2,
                                          doc="Run a script function for this message."))

    @hookimpl
    def sr_kemi_modules_add(self) -> list[KemiExport]:
        mod = self.ksr_module
        return [
            export(mod, "exec", self.ksr_exec, "s"),
            export(mod, "exec_p1", self.ksr_exec_p1, "ss"),
            export(mod, "execx", self.ksr_execx, "s"),
        ]

    @hookimpl
    def sr_kemi_eng_register(self) -> list[EngineSpec]:
        return [EngineSpec("python", self.make_engine,
                           doc=f"Python routing script ({self.name}, "
                               f"{'function' if self.function_style else 'class'} style)")]

    @hookimpl
    def mod_init(self, core: Core) -> None:
        state = self.get_state()
        if not state.options.path:
            param = "load" if self.function_style else "script_name"
            raise ModuleError(f"{self.name}: no script given: set "
                              f"modparam(\"{self.name}\", \"{param}\", \"/path/script.py\")")
        if not os.path.isfile(state.options.path):
            raise ModuleError(f"{self.name}: the Python script {state.options.path} does not exist")

    @hookimpl
    def write_script_stubs(self, core: Core, directory: str) -> list[str]:
        """Typing stubs for Python (KSR, Router) and Lua (KSR.lua) scripts."""
        if self.name != "app_python":  # the app_python3 aliases would write the same files
            return []
        from kemi_engine_python.stubs import write_stubs

        return [str(p) for p in write_stubs(core.registry, directory)]

    @hookimpl
    def child_init(self, rank: int) -> None:
        """Run the script's child init with the worker's rank (Kamailio's child_init)."""
        if self.state is None:
            return
        self.state.rank = rank
        engine = self.core.engine if self.core is not None else None
        if isinstance(engine, PythonEngine) and engine.state is self.state and engine.image:
            engine.image.ensure_child_init(rank)

    # ---- state and engine ----------------------------------------------------------------
    def options(self, core: Core) -> ScriptOptions:
        m = self.name
        path = core.modparam(m, "load")
        explicit = False
        if self.function_style:
            init, child = core.modparam(m, "script_init"), core.modparam(m, "script_child_init")
            explicit = bool(init or child)
            extra: dict[str, Any] = {"script_init": init or "ksr_script_init",
                                     "script_child_init": child or "ksr_script_child_init"}
        else:
            path = path or core.modparam(m, "script_name")
            extra = {"mod_init_function": core.modparam(m, "mod_init_function"),
                     "child_init_method": core.modparam(m, "child_init_method")}
        request = core.config.kemi_callbacks.get("request_route_callback") or REQUEST_ROUTE
        path = core.resolve_path(path)
        return ScriptOptions(path=os.path.abspath(path) if path else "",
                             style="function" if self.function_style else "class",
                             request_route=request, init_names_explicit=explicit, **extra)

    def get_state(self) -> PythonState:
        if self.core is None:
            raise ModuleError(f"{self.name}: used before mod_register")
        if self.state is None:
            self.state = PythonState(self.core, self.options(self.core))
        return self.state

    def make_engine(self, core: Core) -> PythonEngine:
        return PythonEngine(self.get_state())

    # ---- app_python.exec & co: call a script function from a route ---------------------------
    def _exec(self, ctx: MsgContext, method: str, *args: Any) -> int:
        state = self.get_state()
        engine = ctx.core.engine
        if not (isinstance(engine, PythonEngine) and engine.state is state):
            # "python" is not the cfgengine: the module imports the script for exec itself
            if state.exec_engine is None:
                state.exec_engine = PythonEngine.for_exec(state)
            engine = state.exec_engine
        if not engine.has_route(method):
            path = engine.image.path if engine.image is not None else ""
            raise ScriptError(f"{path}: app_python exec: the script has no {method}()")
        try:
            result = engine.run(method, ctx, *args)
        except ScriptError as exc:
            script_log.error("%s", exc, exc_info=exc.__cause__)
            return -1
        return 1 if normalize_result(result) >= 0 else -1

    def ksr_exec(self, ctx: MsgContext, method: str) -> int:
        """Run the script function ``method`` (with the msg object in class style)."""
        return self._exec(ctx, method)

    def ksr_exec_p1(self, ctx: MsgContext, method: str, p1: str) -> int:
        """Run the script function ``method`` with one extra str argument."""
        return self._exec(ctx, method, p1)

    def ksr_execx(self, ctx: MsgContext, method: str) -> int:
        """Run the script function ``method``, then stop the route (as exit)."""
        self._exec(ctx, method)
        raise ScriptExit()

    def _cfg_exec(self, ctx: MsgContext, method: str, param: str | None = None) -> int:
        return self._exec(ctx, method) if param is None else self._exec(ctx, method, param)


app_python = PythonEngineModule("app_python")
app_python3 = PythonEngineModule("app_python3")
app_python3s = PythonEngineModule("app_python3s")
