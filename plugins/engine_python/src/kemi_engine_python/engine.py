"""The "python" config engine: runs the script's callbacks for each message.

``PythonState`` is what one loaded app_python module keeps in a process: the KSR module, the
loaded script and a reload counter in shared memory. It is built in the main process and
inherited by the workers through fork. A reload (RPC, main process) imports the new script
there first; only when that worked is the counter moved, and each worker re-imports the script
when it sees the counter move at the start of its next request or reply route.
"""

from __future__ import annotations

import logging
import sys
import types
from typing import TYPE_CHECKING, Any

from kemi_core.api import SCRIPT_FAULT, ScriptDrop, ScriptError, ScriptExit
from kemi_core.runtime.reload import ReloadChannel
from kemi_engine_python.ksr import ContextSlot, build_ksr
from kemi_engine_python.legacy import PyMsg
from kemi_engine_python.script import (
    ScriptImage,
    ScriptOptions,
    error_location,
    load_script,
    read_source,
)

if TYPE_CHECKING:
    from kemi_core.api import Core, MsgContext

log = logging.getLogger("kemi.engine.python")
script_log = logging.getLogger("kemi.script")


class PythonState:
    """Per-process state of one app_python module (shared by its engine objects)."""

    def __init__(self, core: Core, options: ScriptOptions) -> None:
        self.core = core
        self.options = options
        #: The running message context, read by every KSR closure (index 0).
        self.cur: ContextSlot = [None]
        self.ksr: types.ModuleType | None = None
        self.image: ScriptImage | None = None
        #: Generations published by successful reloads (shared memory made before fork).
        self.counter: Any = None
        #: Rank given by the child_init hook (else core.worker_rank).
        self.rank: int | None = None

    def ensure_counter(self) -> None:
        if self.counter is None:
            self.counter = ReloadChannel("app_python")

    def _ksr(self) -> types.ModuleType:
        self.ksr = build_ksr(self.core.registry, self.cur, self.ksr)
        return self.ksr

    def load_image(self, generation: int, source: bytes | None = None) -> ScriptImage:
        """Import the script now (raises ScriptError, with file:line where there is one)."""
        return load_script(self.options, self._ksr(), generation, source)

    def ensure_loaded(self) -> ScriptImage:
        self.ensure_counter()
        if self.image is None:
            generation, source = self.counter.fetch()  # after a reload: the published text
            self.image = self.load_image(generation, source or None)
        return self.image

    def reload(self) -> ScriptImage:
        """Import the script's current contents; the old one stays on any error."""
        self.ensure_counter()
        source = read_source(self.options.path)  # read once: workers get these very bytes
        image = self.load_image(self.counter.value + 1, source)
        self.image = image
        self.counter.publish(source)
        log.info("%s: Python script reloaded (generation %d)", self.options.path, image.generation)
        return image

    def worker_rank(self) -> int:
        return self.rank if self.rank is not None else self.core.worker_rank

    def sync_worker(self) -> None:
        """In a worker: follow a reload done in the main process, then run child init."""
        self.ensure_counter()
        target = self.counter.value
        if self.image is None:
            self.ensure_loaded()
        elif self.image.generation != target:
            try:
                target, source = self.counter.fetch()
                self.image = self.load_image(target, source or None)
                log.info("%s: worker %d re-imported the script (generation %d)",
                         self.options.path, self.worker_rank(), target)
            except ScriptError as exc:
                log.error("reload in worker %d failed, the old script keeps running: %s",
                          self.worker_rank(), exc)
        assert self.image is not None
        self.image.ensure_child_init(self.worker_rank())

    def call(self, image: ScriptImage, name: str, ctx: MsgContext, *args: Any) -> int:
        """Run callback ``name`` of ``image`` with ``ctx`` as KSR's current context."""
        fn = image.callback(name)
        if fn is None:
            script_log.error("%s: the script has no callback %s()%s", image.path, name,
                             " method in its handler object" if image.takes_msg else "",
                             extra=SCRIPT_FAULT)
            raise ScriptError(f"{image.path}: callback {name} is not defined by the script")
        cur = self.cur
        previous = cur[0]
        cur[0] = ctx
        try:
            result = fn(PyMsg(ctx), *args) if image.takes_msg else fn(*args)
        except ScriptExit:  # KSR.x.exit(): the route ends, successfully (as app_lua)
            return 1
        except ScriptDrop:
            ctx.dropped = True
            return 0
        except SystemExit:  # sys.exit() ends the route like KSR.x.exit(), never the worker
            return 1
        except Exception as exc:
            where = error_location(exc, image.path)
            first = f"{where}: {type(exc).__name__}: {exc}"
            script_log.error("%s: error in %s(): %s: %s", where, name, type(exc).__name__, exc,
                             exc_info=exc, extra=SCRIPT_FAULT)
            ctx.extra["script_error"] = first
            return -1
        finally:
            cur[0] = previous
        if result is None:
            return 1
        if result.__class__ is int:
            return int(result)
        if isinstance(result, bool):
            return 1 if result else -1
        return int(result) if isinstance(result, int) else 1


class PythonEngine:
    """One engine object (the core may build one in main and one per worker)."""

    name = "python"

    def __init__(self, state: PythonState) -> None:
        self._state = state
        self._seen = -1  # counter value at the last sync; -1 = never synced in this object

    @property
    def state(self) -> PythonState:
        return self._state

    def load(self) -> None:
        self._state.ensure_loaded()

    def has_route(self, name: str) -> bool:
        image = self._state.ensure_loaded()
        return image.callback(name) is not None

    def run(self, name: str, ctx: MsgContext) -> int:
        st = self._state
        # One int compare per message; a reload is followed only at an outermost run, never
        # between a request route and the branch routes tm runs inside it.
        if st.image is None or (self._seen != st.counter.value and st.cur[0] is None):
            st.sync_worker()
            self._seen = st.counter.value
        return st.call(st.image, name, ctx)  # type: ignore[arg-type]

    def reload(self) -> None:
        self._state.reload()
        self._seen = -1

    def current_location(self) -> str | None:
        """file:line of the innermost script frame running now (the debugger's cfgtrace)."""
        image = self._state.image
        if image is None:
            return None
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename == image.path:
                return f"{image.path}:{frame.f_lineno}"
            frame = frame.f_back  # type: ignore[assignment]
        return None
