"""NativeEngine: runs compiled kamailio.cfg route blocks behind the Engine protocol.

Names ``run``/``has_route`` accept:
- the KEMI callback names: ``ksr_request_route`` -> request_route, ``ksr_reply_route`` ->
  reply_route, ``ksr_onsend_route`` -> onsend_route (and the names set with
  ``kemi.*_route_callback``), or the block kinds themselves ("request_route", ...);
- qualified names ``"<kind>:NAME"`` or ``"<kind>[NAME]"``, kind one of route, failure_route,
  branch_route, onreply_route, branch_failure_route, event_route
  (``"failure_route:MANAGE_FAILURE"``, ``"event_route[xhttp:request]"``) - what tm should pass;
- a bare NAME as given to t_on_failure("NAME") & co.: looked up first in the table that
  ``ctx.route_type`` selects (FAILURE -> failure_route, BRANCH -> branch_route, TM_ONREPLY ->
  onreply_route, BRANCH_FAILURE -> branch_failure_route, EVENT -> event_route), then in
  route, failure_route, branch_route, onreply_route, branch_failure_route, event_route.
  ``event_route[tm:branch-failure:NAME]`` is branch_failure_route NAME.

Result of ``run``: the route's return value (1 when it ends without ``return``); ``exit``,
``return(0)`` or a function returning 0 raise ScriptExit, ``drop`` raises ScriptDrop, and a
run-time error raises ScriptFault (a ScriptError with file:line:column): the core's
``run_route`` gives them their meaning, as for every engine.

Reload is the core's (``cfg.reload`` / ``cfgengine.reload``): a fresh engine reads the route
blocks from the config file again; ``snapshot`` / ``load_snapshot`` hand the blocks the main
process compiled to every worker.
"""

from __future__ import annotations

import logging
import pickle
import types
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from kemi_core.config.model import RouteBlock
from kemi_core.engine import ONSEND_ROUTE, REPLY_ROUTE, REQUEST_ROUTE
from kemi_core.errors import ConfigError, ScriptError
from kemi_core.native.check import check_blocks
from kemi_core.native.compiler import Program, RouteFn, compile_routes
from kemi_core.native.parser import parse_block
from kemi_core.runtime.context import RouteType
from kemi_core.sip.syntax import PURE_PYTHON

try:
    if PURE_PYTHON:
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import route_runner
except ImportError:  # not built: run below for every call
    route_runner = None

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext
    from kemi_core.runtime.core import Core

log = logging.getLogger("kemi.native")

_MAIN_KINDS = ("request_route", "reply_route", "onsend_route")
_NAMED_KINDS = ("route", "failure_route", "branch_route", "onreply_route",
                "branch_failure_route", "event_route")
_KIND_BY_ROUTE_TYPE = {
    RouteType.FAILURE: "failure_route",
    RouteType.BRANCH: "branch_route",
    RouteType.TM_ONREPLY: "onreply_route",
    RouteType.BRANCH_FAILURE: "branch_failure_route",
    RouteType.EVENT: "event_route",
}
_CALLBACK_KEYS = {"request_route_callback": "request_route",
                  "reply_route_callback": "reply_route",
                  "onsend_route_callback": "onsend_route"}


class NativeEngine:
    """The ``native`` engine (cfgengine unset, "native" or "default")."""

    name = "native"

    def __init__(self, core: Core, blocks: Sequence[RouteBlock] | None = None,
                 reload_source: Callable[[], Sequence[RouteBlock]] | None = None) -> None:
        if blocks is None and reload_source is None:
            raise ValueError("NativeEngine needs route blocks or a reload_source")
        self.core = core
        self._blocks = list(blocks) if blocks is not None else None
        self._reload_source = reload_source
        self._program: Program | None = None
        self._cache: dict[tuple[str, int], RouteFn | None] = {}
        #: name -> route for the names whose meaning does not depend on the route type (the
        #: callbacks and qualified names): ``run`` finds them with one dict lookup.
        self._direct: dict[str, RouteFn] = {}
        #: name -> has_route's answer.
        self._known: dict[str, bool] = {}
        self._callbacks = {REQUEST_ROUTE: "request_route", REPLY_ROUTE: "reply_route",
                           ONSEND_ROUTE: "onsend_route"}
        for key, kind in _CALLBACK_KEYS.items():
            configured = core.config.kemi_callbacks.get(key)
            if configured:
                self._callbacks[configured] = kind
        for kind in _MAIN_KINDS:
            self._callbacks[kind] = kind
        if route_runner is not None and type(self).run is NativeEngine.run:
            # run compiled: a name in _direct (the dispatcher's request_route) is called
            # without a Python frame of run's own; every other call is run's below
            self.__dict__["run"] = route_runner((self._direct, types.MethodType(NativeEngine.run, self)))

    # ---- loading ------------------------------------------------------------------------
    def _compile(self, blocks: Sequence[RouteBlock]) -> Program:
        try:
            routes = [parse_block(b) for b in blocks]
            program, _ = compile_routes(self.core, routes)
            return program
        except ConfigError:
            # Report every problem, not only the first one.
            errors = check_blocks(self.core, blocks)
            text = "\n".join(str(e) for e in errors) or "native routes failed to compile"
            raise ScriptError(text)

    def load(self) -> None:
        """Compile the blocks (those given, else from reload_source); ScriptError on errors."""
        if self._blocks is None:
            assert self._reload_source is not None
            self._blocks = list(self._reload_source())
        self._install(self._compile(self._blocks))

    def reload(self) -> None:
        """Re-read blocks from reload_source, compile, swap; keeps the old routes on error."""
        if self._reload_source is None:
            raise ScriptError("native: reload needs a reload_source (the config file)")
        try:
            blocks = list(self._reload_source())
        except ConfigError as exc:
            raise ScriptError(str(exc))
        program = self._compile(blocks)
        self._blocks = blocks
        self._install(program)
        log.info("native routes reloaded (%d blocks)", len(blocks))

    def snapshot(self) -> bytes:
        """The route blocks this engine compiled, for the workers of a reload."""
        return pickle.dumps(self._blocks)

    def load_snapshot(self, data: bytes) -> None:
        """Compile the blocks another process compiled and published (``snapshot``)."""
        blocks: list[RouteBlock] = pickle.loads(data)  # noqa: S301 - our own main process wrote it
        self._install(self._compile(blocks))
        self._blocks = blocks

    def _install(self, program: Program) -> None:
        self._program = program
        self._cache = {}
        self._direct.clear()  # (the same dict: the compiled run reads it)
        self._known = {}

    @property
    def program(self) -> Program:
        if self._program is None:
            self.load()
        assert self._program is not None
        return self._program

    # ---- lookup -------------------------------------------------------------------------
    def _lookup(self, name: str, route_type: int) -> RouteFn | None:
        key = (name, route_type)
        try:
            return self._cache[key]
        except KeyError:
            pass
        fn = self._resolve(name, route_type)
        self._cache[key] = fn
        if fn is not None and (name in self._callbacks or _split_qualified(name) is not None):
            self._direct[name] = fn
        return fn

    def _resolve(self, name: str, route_type: int) -> RouteFn | None:
        prog = self.program
        kind = self._callbacks.get(name)
        if kind is not None:
            return prog.get(kind, None)
        qualified = _split_qualified(name)
        if qualified is not None:
            kind, sub = qualified
            if kind == "route" and sub in ("", "0"):
                return prog.get("request_route", None)
            if kind == "onreply_route" and sub in ("", "0"):
                return prog.get("reply_route", None)
            if kind == "event_route" and sub.startswith("tm:branch-failure:"):
                kind, sub = "branch_failure_route", sub[len("tm:branch-failure:"):]
            return prog.get(kind, sub)
        preferred = _KIND_BY_ROUTE_TYPE.get(RouteType(route_type)) if route_type else None
        if preferred is not None:
            fn = prog.get(preferred, name)
            if fn is not None:
                return fn
        for kind in _NAMED_KINDS:
            fn = prog.get(kind, name)
            if fn is not None:
                return fn
        return None

    def has_route(self, name: str) -> bool:
        # asked per reply and per t_on_*: the answer is kept until the routes change
        known = self._known.get(name)
        if known is None:
            known = self._known[name] = self._lookup(name, 0) is not None
        return known

    # ---- running ------------------------------------------------------------------------
    def run(self, name: str, ctx: MsgContext) -> int:
        fn = self._direct.get(name)
        if fn is None:
            # a bare name (tm's t_on_branch("X") & co.): its meaning depends on the route type
            route_type = int(ctx.route_type)
            fn = self._cache.get((name, route_type)) or self._lookup(name, route_type)
            if fn is None:
                raise ScriptError(f"native: the config defines no route for {name!r}")
        return fn(ctx)


def _split_qualified(name: str) -> tuple[str, str] | None:
    """("failure_route", "X") from "failure_route:X" or "failure_route[X]"; else None."""
    if name.endswith("]") and "[" in name:
        kind, _, rest = name.partition("[")
        if kind in _NAMED_KINDS:
            return kind, rest[:-1].strip().strip('"')
    kind, sep, rest = name.partition(":")
    if sep and kind in _NAMED_KINDS:
        return kind, rest
    return None
