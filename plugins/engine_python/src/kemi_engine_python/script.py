"""Importing a routing script from its path and finding its callbacks.

Two styles, as in Kamailio:
- ``class`` (app_python, app_python3): the script's ``mod_init()`` returns a handler object whose
  methods ``ksr_request_route(self, msg)`` ... are the callbacks; ``handler.child_init(rank)``
  runs in each worker.
- ``function`` (app_python3s): module-level ``ksr_request_route()`` ... taking no argument;
  optional ``ksr_script_init()`` at load and ``ksr_script_child_init()`` in each worker.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

import attrs

from kemi_core.api import ScriptError

script_log = logging.getLogger("kemi.script")


@attrs.frozen
class ScriptOptions:
    """How to load one script (from the module's parameters)."""

    path: str
    style: str  # "class" | "function"
    request_route: str = "ksr_request_route"
    mod_init_function: str = "mod_init"  # class style
    child_init_method: str = "child_init"  # class style
    script_init: str = "ksr_script_init"  # function style
    script_child_init: str = "ksr_script_child_init"  # function style
    #: True when the init names were set by modparam: then a missing function is an error.
    init_names_explicit: bool = False


def error_location(exc: BaseException, path: str) -> str:
    """``file:line`` of the innermost traceback frame in the script (else the innermost one)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if os.path.abspath(frame.filename) == path:
            return f"{frame.filename}:{frame.lineno}"
    if frames:
        return f"{frames[-1].filename}:{frames[-1].lineno}"
    return path


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg}"
    return f"{type(exc).__name__}: {exc}"


def _fail(what: str, exc: BaseException, path: str) -> ScriptError:
    where = error_location(exc, path)
    script_log.error("%s: %s: %s", where, what, _describe(exc), exc_info=exc)
    return ScriptError(f"{where}: {what}: {_describe(exc)}")


def _module_name(path: str) -> str:
    """A private sys.modules name: the script's stem may clash with any installed module."""
    stem = os.path.splitext(os.path.basename(path))[0]
    safe = "".join(c if c.isalnum() or c == "_" else "_" for c in stem)
    return f"_kemi_script_{safe}"


def import_script(path: str, source: bytes | None = None) -> types.ModuleType:
    """Execute the script as a real module; its directory goes on sys.path for sibling imports.

    The source is compiled here, not through the bytecode cache: a reload within the same
    second with the same file size would otherwise run stale bytecode. ``source`` is the text a
    reload published (a worker runs what the main process checked, not the file as it is now).
    """
    if source is None:
        source = read_source(path)
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise ScriptError(f"{path}: not importable as a Python module")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        code = compile(source, path, "exec", dont_inherit=True)
        exec(code, module.__dict__)
    except (Exception, SystemExit) as exc:
        if previous is not None:
            sys.modules[name] = previous
        else:
            sys.modules.pop(name, None)
        raise _fail("the Python script failed to load", exc, path)
    return module


def read_source(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read the Python script: {exc.strerror or exc}")


@attrs.define(eq=False)
class ScriptImage:
    """One loaded script: the object whose attributes are the callbacks."""

    options: ScriptOptions
    module: types.ModuleType
    #: The handler object (class style) or the module itself (function style).
    target: Any
    takes_msg: bool
    generation: int
    child_init_pid: int | None = None

    @property
    def path(self) -> str:
        return self.options.path

    def callback(self, name: str) -> Callable[..., Any] | None:
        fn = getattr(self.target, name, None)
        return fn if callable(fn) else None

    def ensure_child_init(self, rank: int) -> None:
        """Run the per-worker init once in this process (a fork gets its own run)."""
        pid = os.getpid()
        if self.child_init_pid == pid:
            return
        self.child_init_pid = pid
        opts = self.options
        name = opts.child_init_method if self.takes_msg else opts.script_child_init
        fn = self.callback(name)
        if fn is None:
            if opts.init_names_explicit:
                script_log.error("%s: the script has no %s() for the worker init", opts.path, name)
            return
        try:
            result = fn(rank)
        except (Exception, SystemExit) as exc:
            _fail(f"{name}({rank}) failed", exc, opts.path)
            return
        if isinstance(result, int) and not isinstance(result, bool) and result < 0:
            script_log.error("%s: %s(%d) returned %d", opts.path, name, rank, result)


def load_script(options: ScriptOptions, ksr: types.ModuleType, generation: int,
                source: bytes | None = None) -> ScriptImage:
    """Import the script with ``KSR`` installed, run its init and check its request route."""
    from kemi_engine_python.legacy import install_router

    sys.modules["KSR"] = ksr
    install_router()
    path = options.path
    module = import_script(path, source)
    if options.style == "function":
        init = getattr(module, options.script_init, None)
        if init is not None:
            try:
                init()
            except (Exception, SystemExit) as exc:
                raise _fail(f"{options.script_init}() failed", exc, path)
        elif options.init_names_explicit and options.script_init:
            raise ScriptError(f"{path}: the script has no function {options.script_init}()")
        image = ScriptImage(options, module, module, takes_msg=False, generation=generation)
        if image.callback(options.request_route) is None:
            raise ScriptError(f"{path}: the script defines no function {options.request_route}()")
        return image
    init = getattr(module, options.mod_init_function, None)
    if not callable(init):
        raise ScriptError(f"{path}: the script defines no function {options.mod_init_function}() "
                          "returning the handler object")
    try:
        handler = init()
    except (Exception, SystemExit) as exc:
        raise _fail(f"{options.mod_init_function}() failed", exc, path)
    if handler is None:
        raise ScriptError(f"{path}: {options.mod_init_function}() returned None; it must return "
                          "the object whose methods are the routing callbacks")
    image = ScriptImage(options, module, handler, takes_msg=True, generation=generation)
    if image.callback(options.request_route) is None:
        raise ScriptError(f"{path}: the object returned by {options.mod_init_function}() "
                          f"({type(handler).__name__}) has no method "
                          f"{options.request_route}(self, msg)")
    return image
