"""The "python" config engine: runs the script's callbacks for each message.

``PythonState`` is what one loaded app_python module keeps in a process: the KSR module and the
slot holding the running context. Each :class:`PythonEngine` holds one imported script (a
``ScriptImage``). Reload is the core's (``app_python.reload`` / ``cfgengine.reload``): the main
process imports the script in a fresh engine to check it, then each worker builds a fresh engine
at its next message from the very bytes the main process checked (``snapshot`` /
``load_snapshot``) and runs the script's child init there.
"""

from __future__ import annotations

import logging
import sys
import types
from typing import TYPE_CHECKING, Any

from kemi_core.api import ScriptDrop, ScriptError, ScriptExit
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
        #: Rank given by the child_init hook (else core.worker_rank).
        self.rank: int | None = None
        #: The engine app_python.exec runs when "python" is not the cfgengine.
        self.exec_engine: PythonEngine | None = None
        #: The last script imported and its bytes: a worker handed the very bytes its main
        #: process imported uses that import (inherited through fork) instead of a second one.
        self._last: tuple[bytes, ScriptImage] | None = None

    def _ksr(self) -> types.ModuleType:
        self.ksr = build_ksr(self.core.registry, self.cur, self.ksr)
        return self.ksr

    def load_image(self, source: bytes | None = None) -> tuple[ScriptImage, bytes]:
        """Import the script (its file, or ``source``); raises ScriptError with file:line
        where there is one."""
        if source is None:
            source = read_source(self.options.path)  # read once: a reload hands these on
        elif self._last is not None and self._last[0] == source:
            return self._last[1], source
        image = load_script(self.options, self._ksr(), self.core.engine_generation, source)
        self._last = (source, image)
        return image, source

    def worker_rank(self) -> int:
        return self.rank if self.rank is not None else self.core.worker_rank


#: PyMsg's allocation, for making one without a call of its __init__ (once per route run)
_new_msg = object.__new__


class PythonEngine:
    """One imported script (the core builds one in main and one per worker and reload)."""

    name = "python"

    def __init__(self, state: PythonState) -> None:
        self._state = state
        self.image: ScriptImage | None = None
        self.source = b""
        self._child_ready = False  # the script's child init ran for this image, here

    @property
    def state(self) -> PythonState:
        return self._state

    def load(self) -> None:
        self.image, self.source = self._state.load_image()
        self._child_ready = False

    def snapshot(self) -> bytes:
        """The script's bytes this engine imported (what the workers of a reload import)."""
        return self.source

    def load_snapshot(self, data: bytes) -> None:
        self.image, self.source = self._state.load_image(data)
        self._child_ready = False

    def _image(self) -> ScriptImage:
        if self.image is None:
            self.load()
        assert self.image is not None
        return self.image

    def _first_run(self) -> ScriptImage:
        """The image, loaded if need be, with the script's per-worker init run (at the first
        message in this process)."""
        image = self._image()
        if not self._child_ready:
            self._child_ready = True
            image.ensure_child_init(self._state.worker_rank())
        return image

    def has_route(self, name: str) -> bool:
        # asked for every reply and forwarded request: image.callback()'s test, inlined
        image = self.image
        if image is None:
            image = self._image()
        return callable(getattr(image.target, name, None))

    @classmethod
    def for_exec(cls, state: PythonState) -> PythonEngine:
        """The engine app_python.exec runs the script in when "python" is not the cfgengine:
        the script imported for it alone, with no per-worker init."""
        engine = cls(state)
        engine.image = state.load_image()[0]
        engine._child_ready = True
        return engine

    def run(self, name: str, ctx: MsgContext, *args: str | int) -> Any:
        """Run callback ``name`` with ``ctx`` as KSR's current context (``args``: an event
        callback's event name, after the msg object); returns what it returned.
        ScriptExit/ScriptDrop propagate; sys.exit() ends the route like KSR.x.exit(); any
        other error is raised as ScriptError with the script's file:line."""
        image = self.image
        if image is None or not self._child_ready:
            image = self._first_run()
        # Looked up at each call, as app_python3 does (a script may replace a method). This
        # runs for every route of every message: a callback that is not there is told apart
        # only when calling it failed, and the usual call has no *args to unpack.
        fn = getattr(image.target, name, None)
        cur = self._state.cur
        previous = cur[0]
        cur[0] = ctx
        try:
            if not image.takes_msg:
                return fn(*args)  # type: ignore[misc]
            msg = _new_msg(PyMsg)  # PyMsg(ctx) without a Python __init__ frame
            msg._ctx = ctx
            return fn(msg, *args) if args else fn(msg)  # type: ignore[misc]
        except SystemExit:  # ends the route like KSR.x.exit(), never the worker
            raise ScriptExit() from None
        except (ScriptExit, ScriptDrop, ScriptError):
            raise
        except Exception as exc:
            if not callable(fn):
                raise ScriptError(f"{image.path}: callback {name} is not defined by the script"
                                  f"{' (a method of its handler object)' if image.takes_msg else ''}"
                                  ) from None
            where = error_location(exc, image.path)
            raise ScriptError(f"{where}: error in {name}(): {type(exc).__name__}: {exc}") from exc
        finally:
            cur[0] = previous

    def reload(self) -> None:
        """Import the script file again in this process; the old one stays on error."""
        self.load()

    def current_location(self) -> str | None:
        """file:line of the innermost script frame running now (the debugger's cfgtrace)."""
        image = self.image
        if image is None:
            return None
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename == image.path:
                return f"{image.path}:{frame.f_lineno}"
            frame = frame.f_back  # type: ignore[assignment]
        return None
