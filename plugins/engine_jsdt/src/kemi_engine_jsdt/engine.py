"""The ``jsdt`` config engine: one QuickJS context per process running the routing script.

The core gives each engine call its meaning (kemi_core.api's engine contract): ``run`` returns
what the JS function returned, lets ScriptExit/ScriptDrop (``KSR.x.exit()``/``KSR.x.drop()``)
propagate and raises ScriptError with ``file:line`` and the JS stack for a script error.
Reload is the core's (``app_jsdt.reload`` / ``cfgengine.reload``): the main process loads a
fresh engine to check the script, each worker builds a fresh engine at its next message from
the exact text the main process checked (``snapshot`` / ``load_snapshot``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NoReturn

import attrs
import quickjs

from kemi_core.api import REQUEST_ROUTE, ScriptDrop, ScriptError, ScriptExit, read_script
from kemi_engine_jsdt.binding import JsArgError
from kemi_engine_jsdt.resolver import Resolver
from kemi_engine_jsdt.runtime import JsRuntime

if TYPE_CHECKING:
    from kemi_core.api import Core, MsgContext

log = logging.getLogger("kemi.app_jsdt")

#: How QuickJS reports a Python exception raised by a callable JS called.
PYTHON_CALL_FAILED = "InternalError: Python call failed"


@attrs.frozen
class JsdtSettings:
    """The app_jsdt modparams an engine needs."""

    script: str
    request_route: str = REQUEST_ROUTE
    log_resolved: bool = False


class JsdtEngine:
    """Runs JS callbacks for messages; see :class:`kemi_core.api.Engine`."""

    name = "jsdt"

    def __init__(self, core: Core, settings: JsdtSettings) -> None:
        self.core = core
        self.settings = settings
        #: The context of the route running now; bound KSR functions read it on each call.
        self.ctx: MsgContext | None = None
        self.resolver = Resolver(core.registry, self, log, settings.log_resolved)
        self.runtime: JsRuntime | None = None
        self.source = ""  # the script text the runtime was built from
        self._failure: BaseException | None = None  # a Python error a KSR call raised

    def failed(self, exc: BaseException) -> None:
        """A KSR function raised ``exc`` (QuickJS passes JS only an InternalError)."""
        self._failure = exc

    # ---- loading ------------------------------------------------------------------------
    def load(self) -> None:
        """Load the script file (ScriptError with file:line on errors; a running runtime
        stays)."""
        if not self.settings.script:
            raise ScriptError("app_jsdt: no script to load "
                              "(set modparam(\"app_jsdt\", \"load\", \"/path/script.js\"))")
        self.load_source(read_script(self.settings.script, "JavaScript file"))

    def load_source(self, source: str) -> None:
        runtime = JsRuntime(self.resolver)
        runtime.load(self.settings.script, source)
        required = self.settings.request_route
        if required and not runtime.has(required):
            raise ScriptError(f"{self.settings.script}: the JavaScript file does not define "
                              f"function {required}()")
        self.runtime = runtime
        self.source = source

    def snapshot(self) -> bytes:
        """The script text this engine runs (what the workers of a reload load)."""
        return self.source.encode()

    def load_snapshot(self, data: bytes) -> None:
        self.load_source(data.decode())

    def reload(self) -> None:
        """Read the script file again in this process; on error the old runtime stays."""
        self.load()

    def current_location(self) -> str | None:
        """Where the script is now (file:line): the debugger's cfgtrace, the watchdog."""
        return self.runtime.location() if self.runtime is not None else None

    # ---- running ------------------------------------------------------------------------
    def _runtime(self) -> JsRuntime:
        if self.runtime is None:
            self.load()
        assert self.runtime is not None
        return self.runtime

    # has_route and run are asked for every message: the loaded runtime is read in place
    # rather than through _runtime() and call(), a Python call less each.
    def has_route(self, name: str) -> bool:
        runtime = self.runtime
        if runtime is None:
            runtime = self._runtime()
        return runtime.has(name)

    def run(self, name: str, ctx: MsgContext) -> Any:
        """Run JS function ``name``; returns what it returned (the core normalises it)."""
        runtime = self.runtime
        if runtime is None:
            runtime = self._runtime()
        fn = runtime.functions.get(name) or runtime.function(name)
        if fn is None:
            raise self._undefined(name)
        # _enter(runtime, fn, (), ctx) in place
        outer_ctx, outer_failure = self.ctx, self._failure
        self.ctx, self._failure = ctx, None
        try:
            return fn()
        except quickjs.JSException as exc:
            self._raise_failure(runtime, exc)
        finally:
            self.ctx, self._failure = outer_ctx, outer_failure

    def call(self, name: str, ctx: MsgContext, *args: Any) -> Any:
        """Run JS function ``name`` with ``args`` for ``ctx`` (a route, app_jsdt.run)."""
        runtime = self._runtime()
        fn = runtime.function(name)
        if fn is None:
            raise self._undefined(name)
        return self._enter(runtime, fn, args, ctx)

    def _undefined(self, name: str) -> ScriptError:
        return ScriptError(f"{self.settings.script}: JavaScript function {name}() is not "
                           "defined (a callback name given to the script, e.g. KSR.tm.t_on_*?)")

    def evaluate(self, code: str, ctx: MsgContext, name: str | None = None) -> Any:
        """Run JavaScript text in this engine's context (app_jsdt.runstring; dostring and
        dofile in a context without a script); ``name`` is what its errors call the text."""
        if self.runtime is None and not self.settings.script:
            self.runtime = JsRuntime(self.resolver)  # a context of its own, no file
        runtime = self._runtime()
        if name is not None:
            runtime.path = name
        return self._enter(runtime, runtime.context.eval, (code,), ctx)

    def _enter(self, runtime: JsRuntime, fn: Any, args: tuple[Any, ...], ctx: MsgContext) -> Any:
        """``fn(*args)`` with ``ctx`` as the KSR functions' context (nested runs keep theirs)."""
        outer_ctx, outer_failure = self.ctx, self._failure
        self.ctx, self._failure = ctx, None
        try:
            return fn(*args)
        except quickjs.JSException as exc:
            self._raise_failure(runtime, exc)
        finally:
            self.ctx, self._failure = outer_ctx, outer_failure

    def _raise_failure(self, runtime: JsRuntime, exc: quickjs.JSException) -> NoReturn:
        """Raise what a JS error means: ScriptExit/ScriptDrop a KSR function raised as they
        are, else ScriptError with file:line and the JS stack."""
        failure = self._failure if str(exc).startswith(PYTHON_CALL_FAILED) else None
        if isinstance(failure, ScriptExit | ScriptDrop):
            raise failure from None
        raise self._fault(runtime, str(exc), failure) from (
            None if failure is None or isinstance(failure, JsArgError | ScriptError) else failure)

    @staticmethod
    def _fault(runtime: JsRuntime, text: str, failure: BaseException | None) -> ScriptError:
        """A script error with file:line and the JS stack; a Python error a KSR function
        raised replaces QuickJS's "Python call failed" message."""
        if failure is None:
            return ScriptError(runtime.error_text(text))
        if isinstance(failure, JsArgError | ScriptError):
            reason = str(failure)
        else:
            reason = f"{type(failure).__name__} in a KSR function: {failure}"
        return ScriptError(runtime.error_text(text, reason))
