"""Drive tm without a network: a core with tm/sl loaded, routes written as Python functions,
a capture transport and a clock the test moves.

    h = TmHarness({"ksr_request_route": lambda ctx: KSR_tm.t_relay(ctx)})
    h.request(raw_invite)              # runs the request route like the dispatcher does
    h.reply(raw_180)                   # runs the reply handlers (tm first)
    h.advance(31.0)                    # moves the virtual clock: tm's timers fire when due
    h.sent                             # every datagram "sent" (kemi_core.testing.Sent)

``Driven(machine)`` drives one sans-IO machine (client, server or proxy transaction, made
without a sink) whose inputs then return what it did as a list of ``kemi_tm.actions`` records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kemi_core.api import (
    CoreConfig,
    MsgContext,
    RecvInfo,
    RouteType,
    ScriptError,
    VirtualClock,
)
from kemi_core.sip import parse_datagram
from kemi_core.testing import CaptureTransport, Sent, attach_dispatcher, offline_core
from kemi_tm.actions import Action, LocalFinal, PassUp, Recorder, Terminated
from kemi_tm.client import ClientTransaction
from kemi_tm.proxy import ProxyTransaction
from kemi_tm.server import ServerTransaction
from kemi_tm.service import TmService

Route = Callable[[MsgContext], Any]


class DictEngine:
    """An engine whose routes are Python callables by name; records (name, route_type) runs."""

    name = "dict"

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.runs: list[tuple[str, RouteType]] = []

    def load(self) -> None: ...

    def reload(self) -> None: ...

    def has_route(self, name: str) -> bool:
        return name in self.routes

    def run(self, name: str, ctx: MsgContext) -> int:
        route = self.routes.get(name)
        if route is None:
            raise ScriptError(f"no route {name}")
        self.runs.append((name, ctx.route_type))
        result = route(ctx)
        return 1 if result is None else int(result)


class TmHarness:
    def __init__(self, routes: dict[str, Route], params: dict[str, Any] | None = None,
                 modules: tuple[tuple[str, Any], ...] = (),
                 config: CoreConfig | None = None) -> None:
        import kemi_sl
        import kemi_tm

        mods = (("sl", kemi_sl), ("tm", kemi_tm), *modules)
        self.clock = VirtualClock(start=1000.0)
        core, transport = offline_core(
            *mods, params={("tm", k): v for k, v in (params or {}).items()}, clock=self.clock,
            config=config)
        self.core = core
        self.transport: CaptureTransport = transport
        self.engine = DictEngine(routes)
        core.engine = self.engine
        self.dispatcher = attach_dispatcher(core)
        self.tm = core.require("tm", TmService)

    @property
    def time(self) -> float:
        return self.clock.now()

    @property
    def sent(self) -> list[Sent]:
        return self.transport.sent

    def take(self) -> list[Sent]:
        """What was sent since the last take()."""
        out = list(self.transport.sent)
        self.transport.sent.clear()
        return out

    def request(self, raw: bytes | str, src: tuple[str, int] = ("127.0.0.1", 5070)) -> None:
        data = raw.encode() if isinstance(raw, str) else raw
        self.dispatcher.on_message(parse_datagram(data),
                               RecvInfo("udp", src[0], src[1], "127.0.0.1", 5060))

    def reply(self, raw: bytes | str, src: tuple[str, int] = ("127.0.0.1", 5080)) -> None:
        self.request(raw, src)

    def advance(self, seconds: float) -> None:
        """Move the clock: every timer due on the way fires at its deadline."""
        self.clock.advance(seconds)


#: the machines' inputs ``Driven`` turns into lists of records
_INPUTS = frozenset({"start", "on_response", "on_request", "on_timer", "on_transport_error",
                     "send_reply", "relay_best", "reply", "cancel_all", "cancel_branch",
                     "branch_send_failed"})


class Driven:
    """A transaction machine (client, server or proxy) whose inputs return what it did, in
    order, as ``kemi_tm.actions`` records: what its sink (a ``Recorder``) was told, then the
    input's own result as a record (a message to pass up: ``PassUp``, a local final:
    ``LocalFinal``) and ``Terminated`` when the input ended a client or server machine.
    Anything else reads and writes through to the machine (``.machine`` is the machine)."""

    def __init__(self, machine: Any) -> None:
        assert isinstance(machine.sink, Recorder), "a machine made without a sink"
        object.__setattr__(self, "machine", machine)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.machine, name)
        if name not in _INPUTS:
            return value

        def drive(*args: Any, **kwargs: Any) -> list[Action]:
            machine = self.machine
            # a proxy transaction is a server transaction too, but reports no Terminated
            ends = (isinstance(machine, ClientTransaction | ServerTransaction)
                    and not isinstance(machine, ProxyTransaction))
            ended = ends and machine.terminated
            result = value(*args, **kwargs)
            out = machine.sink.take()
            if result is True:  # on_response / on_request: the message goes up
                out.append(PassUp(args[0]))
            elif type(result) is int and result:  # on_timer / on_transport_error
                out.append(LocalFinal(result))
            if ends and machine.terminated and not ended:
                out.append(Terminated())
            return out

        return drive

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.machine, name, value)
