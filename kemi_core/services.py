"""The APIs modules offer each other (Kamailio's ``bind_tm``, ``load_rr_api`` ...), typed.

A module provides a service in ``mod_register`` or ``mod_init`` (``core.provide("tm", api)``);
another asks for it with the Protocol it relies on (``core.require("tm", TmApi)``), which
checks the object once and fails with a clear message naming the module to load.
The Protocols below are the services kemi's own modules offer; a third-party module may define
its own Protocol (or pass a class) for what it provides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext


@runtime_checkable
class TmApi(Protocol):
    """What tm offers other modules (``core.require("tm", TmApi)``): sl's ``send_reply``
    replies statefully through it when the request has a transaction."""

    def has_transaction(self, ctx: MsgContext) -> bool:
        """Whether the request of ``ctx`` has a transaction (t_newtran or t_relay made one)."""
        ...

    def t_reply(self, ctx: MsgContext, code: int, reason: str) -> int:
        """Reply to the transaction of ``ctx`` statefully (Kamailio's int result)."""
        ...


@runtime_checkable
class SlApi(Protocol):
    """What sl offers other modules (``core.service("sl", SlApi)``): a reply with headers of
    the caller's own (registrar's Contact list) without queueing them for the script."""

    def send_reply(self, ctx: MsgContext, code: int, reason: str,
                   headers: Sequence[tuple[str, str]] = ()) -> int:
        """sl's ``send_reply`` (stateful when tm holds a transaction for the request) with
        ``headers`` after the ones the script queued (append_to_reply ...), which stay queued
        for a later reply as they were (Kamailio's int result)."""
        ...


@runtime_checkable
class RrApi(Protocol):
    """What rr offers other modules (Kamailio's ``load_rr_api``)."""

    def record_route(self, ctx: MsgContext, params: str = "") -> int:
        """Add our Record-Route header(s), with ``params`` appended to our URI."""
        ...

    def loose_route(self, ctx: MsgContext, mode: int = 0) -> int:
        """Route by the Route header set (RFC 3261 16.12)."""
        ...

    def add_rr_param(self, ctx: MsgContext, param: str) -> int:
        """Add ``param`` to the Record-Route header this request will get."""
        ...

    def check_route_param(self, ctx: MsgContext, regexp: str) -> int:
        """Whether the parameters of our Route entry match ``regexp``."""
        ...

    def is_direction(self, ctx: MsgContext, direction: str) -> int:
        """Whether the in-dialog request goes ``downstream`` or ``upstream``."""
        ...

    def get_route_param(self, ctx: MsgContext, name: str) -> tuple[bool, str | None]:
        """(found, value) of parameter ``name`` in our Route entry."""
        ...
