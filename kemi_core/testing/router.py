"""Run kamailio.cfg and its routing script in the test's own process: the ``kemi_router`` fixture.

A :class:`Router` is one kemi worker with no sockets: the config is read, its modules loaded,
their parameters set and the engine chosen by the very code ``kemi run`` uses
(``kemi_core.runtime.builder``); then it sets up as worker 1 does (``child_init``, its engine,
a dispatcher). What the worker would send is recorded instead, and time is a ``VirtualClock``
that only ``advance`` moves, so tm's timers, retransmissions and module timers fire on demand.

    router = Router("kamailio.cfg")
    out = router.request(INVITE, source="udp:127.0.0.1:5070")
    busy = router.reply(out.forwarded[0], 486, "Busy Here")
    later = router.advance(30)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kemi_core.config.model import ListenAddr
from kemi_core.core_exports.log import is_script_fault
from kemi_core.errors import KemiError
from kemi_core.runtime.builder import Overrides, build, load_config, parse_listen
from kemi_core.runtime.clock import VirtualClock
from kemi_core.runtime.context import MsgContext, RecvInfo
from kemi_core.runtime.dispatch import Dispatcher
from kemi_core.runtime.logs import python_level
from kemi_core.runtime.worker import limits_of
from kemi_core.testing.messages import HeadersArg, downstream_reply, wire_bytes
from kemi_core.testing.outcome import (
    LogLines,
    Outcome,
    SentMessage,
    WireSorter,
    failure_message,
    fault_text,
    parse_sent,
)

if TYPE_CHECKING:
    from kemi_core.runtime.core import Core

#: The worker rank the router plays (Kamailio's first SIP worker).
RANK = 1


class ScriptFailure(AssertionError):
    """The routing script failed during a step; the message has its file:line and traceback."""


class _Wire:
    """The worker's transport, on paper: every send is recorded, nothing leaves the process."""

    def __init__(self, listen: list[ListenAddr]) -> None:
        self.listen = listen
        self.sent: list[SentMessage] = []

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool:
        self.sent.append(parse_sent(proto, host, port, data, local))
        return True

    def local_address(self, proto: str) -> tuple[str, int]:
        for addr in self.listen:
            if addr.proto == proto:
                return (addr.host, addr.port)
        first = self.listen[0]
        return (first.host, first.port)


class _Records(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Router:
    """One in-process kemi worker for tests (see the module docstring)."""

    def __init__(self, cfg_path: str | Path, *, defines: Mapping[str, Any] | None = None,
                 fail_on_script_error: bool = True) -> None:
        self.fail_on_script_error = fail_on_script_error
        self.clock = VirtualClock()
        self._sorter = WireSorter()
        self._seen: list[MsgContext] = []
        self._log_level = logging.WARNING
        with self._logging() as handler:
            try:
                cfg = load_config(cfg_path, Overrides(defines=_defines(defines)))
                self._log_level = python_level(cfg.debug)
                logging.getLogger("kemi").setLevel(self._log_level)
                built = build(cfg, clock=self.clock)
            except KemiError as exc:
                raise ScriptFailure(f"kemi refused the config or its script: {exc}") from exc
            core = built.core
            self.wire = _Wire(cfg.listen)
            core.attach_transport(self.wire)
            core.worker_rank = RANK  # as Worker.setup, minus the event loop and sockets
            built.loader.child_init_all(RANK)
            core.engine = core.new_engine()  # a worker's engine, as Worker.setup builds it
            self.dispatcher = Dispatcher(core, limits_of(built))
            core.dispatcher = self.dispatcher
            core.run_housekeeping_on(self.clock)  # what the main process would run, once
        self.built = built
        self.core: Core = core
        #: What loading the config and script logged (mod_init, child_init ...).
        self.startup = self._outcome(handler.records)
        core.request_filters.insert(0, self._saw)
        core.reply_handlers.insert(0, self._saw)
        self._raise_on_failure(self.startup, "starting")

    # ---- steps ----------------------------------------------------------------------------
    def request(self, text: str | bytes, *, source: str = "udp:127.0.0.1:5070",
                raw: bool = False) -> Outcome:
        """A message arrives from ``source`` (``"proto:host:port"``): a request, usually (a reply
        written by hand works too). Runs the routes as a worker would. The text is made
        wire-exact first (CRLF line ends, Content-Length from the body) unless ``raw``."""
        __tracebackhide__ = True
        data = text if raw and isinstance(text, bytes) else wire_bytes(text)
        return self._receive(data, source, "routing the request")

    def reply(self, forwarded: SentMessage, status: int, reason: str = "", *,
              headers: HeadersArg = None, body: bytes | str = b"") -> Outcome:
        """The next hop ``forwarded`` went to answers it: a reply built as that UAS would (every
        Via, its To-tag, Record-Route and a Contact on 1xx/2xx to INVITE), arriving from
        ``forwarded.dest``; reply, onreply and failure routes run as on the wire."""
        __tracebackhide__ = True
        if not forwarded.msg.is_request:
            raise ValueError("reply() answers a forwarded request, not a reply")
        contact = f"<sip:{forwarded.host}:{forwarded.port}" + (
            "" if forwarded.proto == "udp" else f";transport={forwarded.proto}") + ">"
        data = downstream_reply(forwarded.msg, status, reason, headers, body, contact)
        local = forwarded.local or self.core.local_address(forwarded.proto)
        rcv = RecvInfo(forwarded.proto, forwarded.host, forwarded.port, local[0], local[1])
        return self._step(lambda: self.dispatcher.on_data(data, rcv),
                          f"routing the {status} reply from {forwarded.dest}", routed=True)

    def advance(self, seconds: float) -> Outcome:
        """Move the router's clock ``seconds`` forward: transaction timers, retransmissions and
        module timers fire as they fall due."""
        __tracebackhide__ = True
        return self._step(lambda: self.clock.advance(seconds), f"advancing {seconds} s",
                          routed=False)

    def rpc(self, method: str, *params: Any) -> Any:
        """Run a control command (``router.rpc("tm.stats")``) in this worker; its result."""
        command = self.core.rpc_commands.get(method)
        if command is None:
            raise KeyError(f"no RPC command {method!r} (loaded: {', '.join(sorted(self.core.rpc_commands))})")
        return command.func(self.core, list(params))

    @property
    def vars(self) -> dict[str, Any]:
        """``$var(...)`` values of this worker (they live across messages)."""
        return self.core.script_vars

    @property
    def now(self) -> float:
        return self.clock.now()

    def close(self) -> None:
        """Run the modules' mod_destroy and remove the shared store, if one was made (the
        fixture does this when the test ends)."""
        from kemi_core.shared.server import drop_shared_store

        self.built.loader.destroy_all()
        drop_shared_store(self.core)

    # ---- internals ------------------------------------------------------------------------
    def _receive(self, data: bytes, source: str, step: str) -> Outcome:
        __tracebackhide__ = True
        src = parse_listen(source)
        local = self.core.local_address(src.proto)
        rcv = RecvInfo(src.proto, src.host, src.port, local[0], local[1])
        return self._step(lambda: self.dispatcher.on_data(data, rcv), step, routed=True)

    def _step(self, action: Callable[[], Any], step: str, routed: bool) -> Outcome:
        __tracebackhide__ = True
        start = len(self.wire.sent)
        self._seen.clear()
        with self._logging() as handler:
            action()
        out = self._outcome(handler.records)
        for sent in self.wire.sent[start:]:
            self._sorter.add(out, sent, timed=not routed)
        if self._seen:
            out.ctx = self._seen[0]
            out.dropped = out.ctx.dropped
        elif routed:
            # no request filter or reply handler saw it: the reply route dropped it, or it was
            # unreadable (then dropped unless a 400 went back)
            out.dropped = not out.sent
        self._seen.clear()
        self._raise_on_failure(out, step)
        return out

    def _outcome(self, records: list[logging.LogRecord]) -> Outcome:
        out = Outcome(records=list(records))
        out.logs = LogLines(r.getMessage().rstrip("\r\n") for r in records)
        out.errors = [fault_text(r) for r in records if is_script_fault(r)]
        return out

    def _raise_on_failure(self, out: Outcome, step: str) -> None:
        __tracebackhide__ = True
        if out.errors and self.fail_on_script_error:
            raise ScriptFailure(failure_message(out.errors, step))

    def _saw(self, ctx: MsgContext) -> bool:
        """A request filter and a reply handler that only notes the message's context."""
        self._seen.append(ctx)
        return False

    @contextmanager
    def _logging(self) -> Iterator[_Records]:
        """Capture the kemi loggers at this config's ``debug`` level while a step runs (the
        level a script sets with setdebug() carries over to the router's next step)."""
        logger = logging.getLogger("kemi")
        previous = logger.level
        logger.setLevel(self._log_level)
        handler = _Records(logging.DEBUG)
        logger.addHandler(handler)
        try:
            yield handler
        finally:
            logger.removeHandler(handler)
            self._log_level = logger.level
            logger.setLevel(previous)


def _defines(defines: Mapping[str, Any] | None) -> dict[str, str]:
    """``{"WITH_X": None, "PORT": 5080}`` as the preprocessor's defines (-A NAME[=VALUE])."""
    return {name: "" if value is None else str(value) for name, value in (defines or {}).items()}
