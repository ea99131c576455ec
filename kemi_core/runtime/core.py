"""The core facade: what modules and engines see of the server.

One ``Core`` exists per process. It is built from the parsed config in the main process, then
inherited by each forked worker, where ``attach_transport`` connects it to that worker's sockets.
Modules keep a reference from ``mod_register(core)`` / ``mod_init(core)``.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from kemi_core.config.paths import resolve_existing_file
from kemi_core.counters import Counter, CounterTable, Gauge, Kind
from kemi_core.errors import ConfigError, ModuleError, ScriptError
from kemi_core.forwarding import RESOLVER, Resolver, forward_reply
from kemi_core.forwarding.targets import inbound_udp
from kemi_core.forwarding.via import advertised_sockets
from kemi_core.kemi.registry import KemiRegistry
from kemi_core.pv.table import PvTable
from kemi_core.runtime.clock import Clock, Timer, on_grid, repeat
from kemi_core.runtime.context import MsgContext, RecvInfo, RouteType, message_context
from kemi_core.runtime.myself import Myself
from kemi_core.runtime.records import CfgFunction, ParamSpec, RpcCommand, Transport
from kemi_core.runtime.routes import run_route
from kemi_core.sip.reply import request_crc32

if TYPE_CHECKING:
    from kemi_core.config.model import CoreConfig
    from kemi_core.engine import Engine, EngineSpec
    from kemi_core.plugins import ModuleLoader
    from kemi_core.runtime.dispatch import Dispatcher
    from kemi_core.runtime.main_sip import MainSip
    from kemi_core.runtime.reload import EngineReload
    from kemi_core.sip.message import SipMsg
    from kemi_core.stats import CoreStats

#: ``Core.onsend`` before the engine was asked whether the script has an onsend_route
ONSEND_UNKNOWN = ""
#: Kamailio 5.6.3 ignores a drop in the onsend_route of its KEMI engines (KSR.x.drop(),
#: KSR.set_drop() or any value returned: the message goes; run side by side, stateless and
#: tm): kemi's KEMI engines do the same, only native routes drop there
ONSEND_DROP_IGNORED = frozenset(("lua", "python", "jsdt"))

log = logging.getLogger("kemi.core")

#: How often the handlers of add_timer_handler run, in seconds (Kamailio's timer tick order).
TIMER_TICK = 0.05


__all__ = ["CfgFunction", "Core", "ParamSpec", "RpcCommand", "Transport"]

ReplyHandler = Callable[[MsgContext], bool]
S = TypeVar("S")


class Core:
    """Server-wide state and services for modules and engines."""

    def __init__(self, config: CoreConfig, clock: Clock | None = None) -> None:
        self.config = config
        #: Time and timers of this process (kemi_core.runtime.clock): ``now()``, ``call_at``,
        #: ``call_later``, ``call_every``. Tests give a VirtualClock they advance.
        self.clock: Clock = clock if clock is not None else Clock()
        self.registry = KemiRegistry()
        #: Pseudo-variables: the core's own and those modules register (``core.pv.register``).
        self.pv = PvTable()
        self.params: dict[tuple[str, str], ParamSpec] = {}
        self.param_values: dict[tuple[str, str], Any] = {}
        #: bumped by every set_param: a module keeping its settings read from ``modparam``
        #: reads them again when it changed (tests set params after start-up)
        self.param_version = 0
        #: (file, line) of the modparam that set each parameter last (for param_error)
        self.param_places: dict[tuple[str, str], tuple[str | None, int | None]] = {}
        self.rpc_commands: dict[str, RpcCommand] = {}
        self.cfg_functions: dict[str, CfgFunction] = {}
        self.engine_specs: dict[str, EngineSpec] = {}
        #: The engine running the script in this process (replaced by a reload).
        self.engine: Engine | None = None
        #: The script's onsend_route callback (``onsend_name``): None when it has none,
        #: ONSEND_UNKNOWN until asked after the engine changed (a hot path tests ``is None``).
        self.onsend: str | None = ONSEND_UNKNOWN
        #: onsend_route_reply=yes: onsend_route also runs for the replies forwarded here.
        self.onsend_reply = config.onsend_route_reply
        #: The cfgengine's spec and its cross-worker reload (set by ``use_engine``).
        self.engine_spec: EngineSpec | None = None
        self._reload: EngineReload | None = None
        self.loaded_modules: list[str] = []
        #: Called for each reply after the reply route (tm registers here); True = consumed.
        self.reply_handlers: list[ReplyHandler] = []
        #: Told of a message the transport took (send returned True) but could not deliver
        #: after all: a stream connection another worker held was gone (tm fails its branch).
        self.send_failure_handlers: list[Callable[[bytes], None]] = []
        self.transport: Transport | None = None
        #: The main process of a forked server: its sends from the listen sockets and its
        #: mailbox for the replies to them (``runtime.main_sip``); None elsewhere.
        self.main_sip: MainSip | None = None
        #: Called in the main process with each reply to what it sent (``add_main_reply_handler``).
        self.main_reply_handlers: list[Callable[[SipMsg], bool]] = []
        #: Whether a worker hands such replies over before its other reply handlers (False
        #: when every module registered asked to do it itself, on its miss path).
        self.main_replies_first = False
        #: In a worker of a forked server with main reply handlers: hands a reply whose branch
        #: names the main process to it (True), else False (``runtime.main_sip.to_main``).
        self.main_handoff: Callable[[MsgContext], bool] | None = None
        #: Next-hop names to addresses, cached for a bounded time, looked up off the event
        #: loop (kemi_core.forwarding.resolver); one per process.
        self.resolver: Resolver = RESOLVER
        _configure_resolver(self.resolver, config)
        self.loop: Any = None  # the worker's asyncio loop, set when it starts
        #: Counters and gauges shared by every process (kemi's statistics).
        self.counters = CounterTable(config.children if config.fork else 1)
        #: The core's own statistics (kemi_core.stats), declared with the core RPC commands.
        self.stats: CoreStats | None = None
        #: KEMI_STATISTICS=off: counters count nothing (the benchmarks' "statistics off").
        self.statistics_enabled = os.environ.get("KEMI_STATISTICS", "on").lower() != "off"
        self._worker_rank = 0
        self.started_at = time.time()
        self.log = logging.getLogger("kemi")
        #: Per-process $var(...) values (Kamailio keeps them per process, across messages).
        self.script_vars: dict[str, Any] = {}
        #: Shared values: $shv(...) and the like, per process here.
        self.shared_vars: dict[str, Any] = {}
        #: Run before the request route; True = the request was consumed (sl's ACK filter).
        self.request_filters: list[Callable[[MsgContext], bool]] = []
        #: Run after those for an ACK only; True = consumed (sl's filter of the ACKs of its own
        #: replies: no call for every other request).
        self.ack_filters: list[Callable[[MsgContext], bool]] = []
        #: What starts the To-tag of every stateless reply made here (sl's, the drain gate's
        #: 503, the dispatcher's 500): made before the workers fork, so an ACK of such a reply
        #: is known as ours whichever worker it reaches (``local_tag``, ``is_local_tag``).
        self.local_tag_prefix = secrets.token_hex(8)
        self._services: dict[str, object] = {}
        self._checked: dict[tuple[str, type], object] = {}
        #: Called with the main process's event loop once it runs (control channels live there).
        self.main_loop_hooks: list[Callable[[Any], None]] = []
        #: Handlers given to add_timer_handler (each runs from a clock timer every TIMER_TICK).
        self.timer_handlers: list[Callable[[float], None]] = []
        #: Tasks given to add_housekeeping, and the clock they run on in a test router (None:
        #: the main process's loop runs them).
        self.housekeeping: list[tuple[Callable[[], float | None], float]] = []
        self.housekeeping_clock: Clock | None = None
        #: The module loader that calls the loaded modules' hooks (set when it is made).
        self.loader: ModuleLoader | None = None
        #: This worker's message dispatcher (None in the main process and offline).
        self.dispatcher: Dispatcher | None = None
        #: Several workers with stream listeners: the shared table of who holds which stream
        #: connection (kemi_core.transport.handoff), made before the fork; None otherwise.
        self.stream_owners: Any = None
        #: Worker rank -> pid, kept by the main process (``core.ps``).
        self.worker_pids: dict[int, int] = {}
        self._myself: Myself | None = None
        #: the listen sockets' advertised addresses as our Vias name them, None when none
        #: advertises (``forwarding.via.advertised_sockets``, made in ``attach_transport``)
        self.advertised: Any = None
        #: (proto, forced socket text) -> the socket a request then leaves from
        #: (``forwarding.targets.forced_local``'s answers, kept: asked per branch)
        self.forced_sockets: dict[tuple[str, str], tuple[str, int] | None] = {}
        #: the UDP listen sockets a relayed request may leave from because it came in on
        #: them (``forwarding.targets.send_local``), None with one UDP listen
        self.inbound_udp: dict[tuple[str, int], tuple[str, int]] | None = None
        #: (proto, IPv6?) -> the default socket a request leaves from
        #: (``forwarding.targets.default_local``'s answers, kept: asked per relay)
        self.default_sockets: dict[tuple[str, bool], tuple[str, int] | None] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name == "engine":  # another script: whether it has an onsend_route is asked anew
            object.__setattr__(self, "onsend", ONSEND_UNKNOWN)

    @property
    def worker_rank(self) -> int:
        """0 in the main process, 1..children in the workers."""
        return self._worker_rank

    @worker_rank.setter
    def worker_rank(self, rank: int) -> None:
        self._worker_rank = rank
        self.counters.bind(rank)

    # ---- statistics ----------------------------------------------------------------------
    def counter(self, group: str, name: str, doc: str = "", kind: Kind = "counter") -> Counter:
        """The counter ``group:name`` shared by every process: ``inc(n=1)`` in any worker,
        ``value`` (the sum over all processes) anywhere, e.g. in an RPC (main process). The
        same call returns the same counter in any process, at any time; declaring it in
        ``mod_register`` or ``mod_init`` and keeping the object is the cheapest. It shows in the
        statistics RPCs as ``group:name``. ``kind="gauge"``: a level that goes up and down
        (``inc(-1)``) and is never reset."""
        if not self.statistics_enabled:
            from kemi_core.stats import NullCounter

            return NullCounter(group, name, doc, kind)  # type: ignore[return-value]
        return self.counters.counter(group, name, doc, kind)

    def gauge(self, group: str, name: str, read: Callable[[], int], doc: str = "") -> Gauge:
        """A statistic computed by ``read()`` when it is read (in the reading process, the main
        one for RPCs): for values a module already holds there."""
        return self.counters.gauge(group, name, read, doc)

    # ---- services modules offer each other (Kamailio's bind_tm & co) -----------------------
    def provide(self, name: str, service: object) -> None:
        """Offer ``service`` to other modules as ``name`` (from mod_register or mod_init)."""
        if name in self._services:
            raise ModuleError(f"service {name!r} is provided twice")
        self._services[name] = service

    def require(self, name: str, kind: type[S]) -> S:
        """The service ``name``, checked to be a ``kind`` (a runtime-checkable Protocol such
        as :class:`~kemi_core.services.TmApi`, or a class). ModuleError when no loaded module
        provides it (the message names the module to load) or it is not a ``kind``."""
        found = self.service(name, kind)
        if found is None:
            raise ModuleError(f"the {name} service is missing: loadmodule \"{name}.so\" before "
                              "the modules that use it")
        return found

    def service(self, name: str, kind: type[S]) -> S | None:
        """The service ``name`` as a ``kind``, or None when no module provides it (for
        optional collaboration, e.g. sl replying through tm when tm is loaded)."""
        key = (name, kind)
        found = self._checked.get(key)
        if found is None:
            found = self._services.get(name)
            if found is None:
                return None
            if not isinstance(found, kind):
                raise ModuleError(f"service {name!r} is a {type(found).__name__}, not a "
                                  f"{kind.__name__}")
            self._checked[key] = found
        return found  # type: ignore[return-value]

    @property
    def services(self) -> Mapping[str, object]:
        """Every provided service by name (read-only: use provide / require)."""
        return MappingProxyType(self._services)

    # ---- module parameters -------------------------------------------------------------
    def declare_param(self, module: str, name: str, kind: type, default: Any = None,
                      multi: bool = False, doc: str = "", existing_file: bool = False) -> None:
        """Declare a parameter ``modparam("module", "name", value)`` may set.

        ``existing_file``: the value names a file that must exist. A relative path is read
        against the directory of the config file that sets it (else the working directory) and
        stored absolute; a missing file is refused at that modparam's file:line."""
        if kind not in (int, str):
            raise ModuleError(f"{module}: parameter {name} must be of kind int or str")
        self.params[(module, name)] = ParamSpec(module, name, kind, default, multi, doc,
                                                existing_file)

    def set_param(self, module: str, name: str, value: Any, file: str | None = None,
                  line: int | None = None) -> None:
        """Apply a ``modparam``; errors carry the config's file:line. A module name that is
        not a loaded module is a regular expression, as in Kamailio: the parameter goes to every
        loaded module it matches that has it (``modparam("nathelper|registrar", ...)``)."""
        if module not in self.loaded_modules and any(ch in module for ch in "|*[(?+.^$"):
            matched = self._modules_matching(module, name, file, line)
            for mod in matched:
                self.set_param(mod, name, value, file, line)
            return
        if module not in self.loaded_modules:
            raise ConfigError(f"modparam for module {module!r} which is not loaded", file, line)
        spec = self.params.get((module, name))
        if spec is None:
            known = ", ".join(sorted(n for (m, n) in self.params if m == module)) or "none"
            raise ConfigError(f"module {module!r} has no parameter {name!r} (known: {known})", file, line)
        if spec.kind is int:
            if isinstance(value, str):
                try:
                    value = int(value, 0)
                except ValueError:
                    raise ConfigError(f"modparam {module}.{name} expects an integer, got {value!r}", file, line)
        elif not isinstance(value, str):
            value = str(value)
        if spec.existing_file and value:
            value = resolve_existing_file(value, f"{module}.{name}", file, line)
        if spec.multi:
            self.param_values.setdefault((module, name), []).append(value)
        else:
            self.param_values[(module, name)] = value
        self.param_version += 1
        self.param_places[(module, name)] = (file, line)

    def param_error(self, module: str, name: str, reason: str) -> ConfigError:
        """The error for a parameter value a module refuses (raised from its mod_init): the
        reason at the file:line of the modparam that set it."""
        file, line = self.param_places.get((module, name), (None, None))
        return ConfigError(f"modparam {module}.{name}: {reason}", file, line)

    def _modules_matching(self, pattern: str, name: str, file: str | None,
                          line: int | None) -> list[str]:
        import re

        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"modparam module {pattern!r} is not a valid expression: {exc}",
                              file, line)
        matched = [m for m in self.loaded_modules if regex.fullmatch(m)
                   and (m, name) in self.params]
        if not matched:
            raise ConfigError(f"modparam {name!r}: no loaded module matching {pattern!r} has "
                              "this parameter", file, line)
        return matched

    def modparam(self, module: str, name: str) -> Any:
        """The value set by modparam, else the declared default (a list for multi params)."""
        key = (module, name)
        if key in self.param_values:
            return self.param_values[key]
        spec = self.params.get(key)
        if spec is None:
            raise KeyError(f"{module}.{name} is not a declared parameter")
        return [] if spec.multi and spec.default is None else spec.default

    # ---- registration from modules -------------------------------------------------------
    def add_rpc(self, name: str, func: Callable[[Core, list[Any]], Any], doc: str = "") -> None:
        if name in self.rpc_commands:
            raise ModuleError(f"RPC command {name} registered twice")
        self.rpc_commands[name] = RpcCommand(name, func, doc)

    def call_rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """Run RPC command ``method`` in this process and return its result; an unknown
        command raises ModuleError, a failing one raises what it raised."""
        cmd = self.rpc_commands.get(method)
        if cmd is None:
            raise ModuleError(f"RPC command {method} not found")
        return cmd.func(self, list(params or []))

    def rpc_request(self, line: bytes) -> bytes:
        """Answer one JSON-RPC 2.0 request line exactly as the control socket does (never
        raises): for modules that carry RPC over another channel (a FIFO, HTTP)."""
        from kemi_core.rpc.protocol import handle_line

        return handle_line(self, line)

    def add_cfg_function(self, fn: CfgFunction) -> None:
        if fn.name in self.cfg_functions:
            other = self.cfg_functions[fn.name].module
            raise ModuleError(f"cfg function {fn.name} exported by both {other} and {fn.module}")
        self.cfg_functions[fn.name] = fn

    def add_reply_handler(self, handler: ReplyHandler) -> None:
        self.reply_handlers.append(handler)

    def add_main_reply_handler(self, handler: Callable[[SipMsg], bool],
                               first: bool = True) -> None:
        """Call ``handler(msg)`` in the main process with each reply to a request it sent
        (from ``core.main_sip``, its branch starting with ``MAIN_BRANCH``); True = consumed.
        The worker that got the reply ran its reply route and handed it over
        (``runtime.main_sip``): before its reply handlers (``first``), else only where a
        module's own reply handler calls ``core.main_handoff`` (tm, for replies no
        transaction of the worker takes: no cost per reply). With fork=no the reply handlers
        see such replies instead."""
        self.main_reply_handlers.append(handler)
        self.main_replies_first = self.main_replies_first or first

    def add_send_failure_handler(self, handler: Callable[[bytes], None]) -> None:
        """Call ``handler(data)`` with a message that ``send`` took but that could not go out
        after all (the stream connection another worker held was gone and no new one could be
        made): tm fails the branch the request belonged to, as for a send refused at once."""
        self.send_failure_handlers.append(handler)

    def send_failed_later(self, data: bytes) -> None:
        """The message ``data``, which ``send`` took, could not be delivered after all."""
        for handler in self.send_failure_handlers:
            try:
                handler(data)
            except Exception:  # one module's bookkeeping must not stop the others
                log.exception("a send failure handler failed")

    def add_timer_handler(self, handler: Callable[[float], None]) -> Timer:
        """Run ``handler(now)`` every TIMER_TICK seconds in each worker. Prefer
        ``core.clock.call_at(deadline, ...)`` for work due at a known time, or
        ``core.clock.call_every(interval, ...)``: they wake the worker only when needed."""
        self.timer_handlers.append(handler)
        clock = self.clock
        return clock.call_every(TIMER_TICK, lambda: handler(clock.now()))

    def add_housekeeping(self, fn: Callable[[], float | None], interval: float) -> None:
        """Run ``fn()`` every ``interval`` seconds once for the whole server, not in each worker
        (expiring state the workers share): from the main process's event loop under ``kemi
        run`` (the one process's loop with fork=no), from the clock a test router advances.
        ``fn`` may return the delay before its next run. Work for each worker goes on
        ``core.clock`` instead."""
        self.housekeeping.append((fn, interval))
        if self.housekeeping_clock is not None:
            repeat(self.housekeeping_clock.call_later, fn, interval)
            return
        # on the loop's grid: the tasks (and the supervision) share the main process's wakes
        self.main_loop_hooks.append(lambda loop: repeat(on_grid(loop), fn, interval))
        loop = self.loop
        main = self.worker_rank == 0 or not self.config.fork  # fork=no: one process does both
        if loop is not None and loop.is_running() and main:
            repeat(on_grid(loop), fn, interval)  # added after the main loop started

    def run_housekeeping_on(self, clock: Clock) -> None:
        """Run the housekeeping tasks on ``clock`` from now on (a test router, which has no main
        process and never runs the main loop hooks)."""
        self.housekeeping_clock = clock
        for fn, interval in self.housekeeping:
            repeat(clock.call_later, fn, interval)

    # ---- running scripts -----------------------------------------------------------------
    def new_context(self, msg: SipMsg, rcv: RecvInfo,
                    route_type: RouteType = RouteType.REQUEST) -> MsgContext:
        return message_context(msg, rcv, self, route_type,
                               msg.ruri if msg.is_request else None)

    # ---- the config engine (built, reloaded and followed by the core) ------------------------
    def use_engine(self, spec: EngineSpec) -> Engine:
        """Make ``spec`` the cfgengine: its first engine is built and loaded here (main
        process, before the fork; ScriptError stops the start) and ``cfgengine.reload`` works."""
        from kemi_core.runtime.reload import EngineReload

        self.engine_spec = spec
        self._reload = EngineReload(self, spec)
        self.engine = self._reload.start()
        if "cfgengine.reload" not in self.rpc_commands:
            self.add_rpc("cfgengine.reload", lambda core, params: core.rpc_reload_engine(),
                         "Load and check the routing script again (any engine); every worker "
                         "switches to it at its next message. On error nothing changes.")
        return self.engine

    def new_engine(self) -> Engine:
        """A fresh engine of the cfgengine loaded with the current script (a worker at start)."""
        if self._reload is None:
            raise ModuleError("no config engine was selected (use_engine)")
        return self._reload.build()

    def reload_engine(self, engine_name: str | None = None) -> int:
        """Reload the routing script in every process (main process, from an RPC): a fresh
        engine's ``load()`` checks it here first; a ScriptError (``file:line: reason``) leaves
        the old script running. Returns the new generation. ``engine_name``: refuse unless
        that engine is the cfgengine (``app_lua.reload`` names ``lua``)."""
        if self._reload is None:
            raise ScriptError("no config engine to reload")
        active = self._reload.spec.name
        if engine_name is not None and engine_name != active:
            raise ScriptError(f"the {engine_name} engine is not the cfgengine ({active}): "
                              "nothing to reload")
        return self._reload.reload()

    def close_reload(self) -> None:
        """Remove the scripts reloads published (the main process, at shutdown)."""
        if self._reload is not None:
            self._reload.channel.close()

    def rpc_reload_engine(self, engine_name: str | None = None) -> dict[str, Any]:
        """What the reload RPCs answer: the engine and the generations before and after."""
        gen = self.reload_engine(engine_name)
        assert self.engine_spec is not None
        return {"engine": self.engine_spec.name, "old": gen - 1, "new": gen}

    @property
    def engine_generation(self) -> int:
        """How many reloads were published (0: the script loaded at start)."""
        return self._reload.channel.generation if self._reload is not None else 0

    def follow_reload(self) -> None:
        """Before a message (dispatcher): switch to a reloaded script if one was published."""
        reload = self._reload
        # runs before every message: one read of the shared generation, the rest only on change
        if reload is not None and reload.cell.value != reload.seen:
            reload.follow()

    def run_route(self, name: str, ctx: MsgContext) -> int:
        """Run the script's callback ``name`` for ``ctx`` (request, reply, onsend, tm's branch /
        onreply / failure callbacks, a module's event route) and return Kamailio's int:
        what the route returned, normalised; 1 after ``KSR.x.exit()``; 0 after
        ``KSR.x.drop()``, which also sets ``ctx.dropped``; -1 for a script error, which is
        logged once with its ``file:line`` and recorded in ``ctx.fault`` (never raised)."""
        return run_route(self, name, ctx)

    def run_event_route(self, event: str, ctx: MsgContext, callback: str = "") -> int | None:
        """Run the script's handler of event route ``event`` (``"xhttp:request"``) for
        ``ctx``: ``event_route[event]`` in a native config, else the KEMI function
        ``callback`` (a module's ``event_callback`` parameter; ``kemi.event_route_callback``
        when empty) with the event name as its argument. Returns what ``run_route`` returns,
        or None when the script handles no such event."""
        from kemi_core.runtime.routes import event_handler

        found = event_handler(self, event, callback)
        if found is None:
            return None
        name, args = found
        ctx.route_type = RouteType.EVENT
        return run_route(self, name, ctx, *args)

    # ---- network -------------------------------------------------------------------------
    def attach_transport(self, transport: Transport) -> None:
        self.transport = transport
        self.forced_sockets = {}  # (their answers depend on the transport's listens)
        self.advertised = advertised_sockets(self)
        self.inbound_udp = inbound_udp(self)
        self.default_sockets = {}

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool:
        """Send raw bytes; from the listen socket ``local`` when given, else from the first
        listen socket of ``proto`` (the one our Via names). False when the network refused
        them."""
        transport = self.transport
        if transport is None:
            log.error("send with no transport attached (main process?)")
            return False
        ok = transport.send(proto, host, port, data, local)
        stats = self.stats
        if ok and stats is not None:
            # stats.sent(data) written out, a call less for every message sent
            counter = stats.sent_counter.get(data[:9], stats.sent_requests)
            counter.view[counter.slot] += 1
        return ok

    def send_reply(self, ctx: MsgContext, data: bytes) -> bool:
        """Send a reply to the request of ``ctx``: to its source per RFC 3261 18.2.2 / RFC 3581,
        from the socket the request arrived on."""
        # reply_destination written out (tests/unit/test_core_send_reply.py holds them equal)
        via = ctx.msg.via  # read first: a Via that does not parse raises for every transport
        rcv = ctx.rcv
        proto = rcv.proto
        if proto != "udp" or ctx.force_rport or "rport" in via.params:
            host, port = rcv.src_ip, rcv.src_port
        else:
            host, port = rcv.src_ip, via.port or 5060
        return self.send_reply_to(ctx, data, proto, host, port, (rcv.dst_ip, rcv.dst_port))

    def send_reply_to(self, ctx: MsgContext, data: bytes, proto: str, host: str, port: int,
                      local: tuple[str, int]) -> bool:
        """Send a reply to the request of ``ctx`` to host:port from ``local`` (send_reply's
        second half: sl's compiled usual reply knows where it goes), counted as sent and
        marking ``ctx`` replied when the transport took it."""
        # self.send written out: every local reply passes here
        transport = self.transport
        if transport is None:
            log.error("send with no transport attached (main process?)")
            return False
        if not transport.send(proto, host, port, data, local):
            return False
        stats = self.stats
        if stats is not None:
            counter = stats.sent_counter.get(data[:9], stats.sent_requests)
            counter.view[counter.slot] += 1
        ctx.replied = True
        return True

    def local_tag(self, msg: SipMsg) -> str:
        """The To-tag of a stateless reply to ``msg``: the server's prefix, then a CRC of the
        request's Call-ID, From, CSeq and top Via lines (the same for its retransmissions)."""
        return f"{self.local_tag_prefix}.{request_crc32(msg):08x}"

    def is_local_tag(self, tag: str | None) -> bool:
        """Whether a To-tag is one ``local_tag`` made (an ACK with it ends there)."""
        return tag is not None and tag.startswith(self.local_tag_prefix + ".")

    def forward_reply_statelessly(self, ctx: MsgContext) -> bool:
        """Send the reply of ``ctx`` on statelessly: pop our Via, send it to the next one
        (RFC 3261 16.11, 18.2.2; ``kemi_core.forwarding.forward_reply``). False when it is not
        ours to forward or could not be sent."""
        return forward_reply(self, ctx.msg, True, ctx)

    def onsend_name(self) -> str | None:
        """The script's onsend_route callback, None when it has none (kept in ``onsend`` until
        the engine changes)."""
        name = self.onsend
        if name == ONSEND_UNKNOWN:
            engine = self.engine
            name = self.config.kemi_callbacks.get("onsend_route_callback") or "ksr_onsend_route"
            if engine is None or not engine.has_route(name):
                name = None
            self.onsend = name
        return name

    def has_onsend_route(self) -> bool:
        """Whether the script has an onsend_route (``run_onsend`` then runs it)."""
        return self.onsend is not None and self.onsend_name() is not None

    def run_onsend(self, msg: SipMsg, rcv: RecvInfo, data: bytes, proto: str, ip: str,
                   port: int, routed: MsgContext | None = None) -> bool:
        """Kamailio's onsend_route, run just before ``data`` leaves for ip:port over ``proto``:
        a request forwarded statelessly or the first send of each branch tm relays (not its
        retransmissions, nor the CANCEL or ACK tm makes itself), and with onsend_route_reply=yes
        a reply forwarded statelessly or relayed by tm (not a local one). As in Kamailio 5.6
        the route sees the message as routed (``msg``: the request with its R-URI and Via as
        received, not tm's branch; or the reply), with $du, flags and AVPs of ``routed``, and
        the outgoing bytes only through $snd(buf)/$snd(len); what it changes in the message is
        not sent (``data`` goes as it is). False when the script dropped it: it is not sent
        (native routes only: Kamailio's KEMI engines cannot drop there,
        ``ONSEND_DROP_IGNORED``)."""
        name = self.onsend_name()
        if name is None:
            return True
        ctx = message_context(msg, rcv, self, RouteType.ONSEND)  # without attrs' __init__
        if routed is not None:
            ctx.dst_uri = routed.dst_uri
            ctx.flags = routed.flags
            ctx.bflags = routed.bflags
            ctx.avps = routed.avps
            ctx.xavps = routed.xavps
        ctx.extra["send_info"] = {"proto": proto, "host": ip, "port": port, "buf": data}
        run_route(self, name, ctx)  # a fault is logged; the message still goes
        if not ctx.dropped or getattr(self.engine, "name", "") in ONSEND_DROP_IGNORED:
            return True
        if self.stats is not None:
            (self.stats.drop_requests if msg.is_request else self.stats.drop_replies).inc()
        return False

    def call_later(self, delay: float, func: Callable[[], None]) -> Timer:
        """Run ``func`` after ``delay`` seconds (``core.clock.call_later``); returns a timer
        with ``cancel()``."""
        return self.clock.call_later(delay, func)

    def resolve_path(self, path: str) -> str:
        """A file the config names (a routing script, a database file): ``path`` as given when it
        exists, or is absolute (relative paths are read from the working directory, as Kamailio
        does), else the same relative path next to kamailio.cfg when that one exists."""
        if not path or os.path.isabs(path) or os.path.exists(path):
            return path
        beside = os.path.join(os.path.dirname(os.path.abspath(self.config.source)), path)
        return beside if os.path.exists(beside) else path

    def local_address(self, proto: str = "udp") -> tuple[str, int]:
        """The (ip, port) this worker names in its Via for ``proto``."""
        if self.transport is None:
            lst = self.config.listen[0] if self.config.listen else None
            return (lst.host, lst.port) if lst else ("127.0.0.1", 5060)
        return self.transport.local_address(proto)

    @property
    def myself(self) -> Myself:
        """This server's names (listen sockets, aliases): built once from the config, in the
        main process before the workers fork (auto_aliases asks the resolver)."""
        if self._myself is None:
            self._myself = Myself.from_config(self.config)
        return self._myself

    def is_myself(self, host: str, port: int | None = None, proto: str | None = None) -> bool:
        """Whether host[:port] over ``proto`` names this server, as Kamailio's check_self
        decides (listen sockets, advertised addresses, aliases); None or 0: any port/proto."""
        return self.myself.matches(host, port, proto)

    def now(self) -> float:
        """Monotonic seconds (``core.clock.now()``)."""
        return self.clock.now()


def _configure_resolver(resolver: Resolver, config: CoreConfig) -> None:
    """Kamailio's DNS cache lifetimes, when kamailio.cfg sets them (seconds)."""
    for name, attr in (("dns_cache_max_ttl", "ttl"), ("dns_cache_negative_ttl", "negative_ttl")):
        value = config.ignored.get(name)
        try:
            seconds = int(value) if value is not None else 0
        except (TypeError, ValueError):
            continue
        if seconds > 0:
            setattr(resolver, attr, float(seconds))
