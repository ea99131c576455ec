"""The records modules register with the Core: parameters, RPC commands, native cfg functions,
and the transport a worker attaches."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from kemi_core.runtime.core import Core


@attrs.frozen
class ParamSpec:
    """A module parameter declared in ``mod_register`` (checked against ``modparam``)."""

    module: str
    name: str
    kind: type  # int or str
    default: Any = None
    multi: bool = False  # repeatable: the value is the list of every modparam given
    doc: str = ""
    #: The value names a file that must exist (a routing script): see kemi_core.config.paths.
    existing_file: bool = False


@attrs.frozen
class RpcCommand:
    """A control-socket command: ``func(core, params)`` returns a JSON-able result."""

    name: str
    func: Callable[[Core, list[Any]], Any]
    doc: str = ""


@attrs.frozen
class CfgFunction:
    """A function the native kamailio.cfg language can call by its cfg name.

    ``func(ctx, *args)`` gets the arguments already fixed up (str, or int where ``int_params``
    names the position) and returns Kamailio's int convention.
    """

    module: str
    name: str
    func: Callable[..., int]
    min_args: int = 0
    max_args: int = 0
    int_params: tuple[int, ...] = ()
    doc: str = ""


class Transport(Protocol):
    """What a worker's network layer offers the core (kemi_core.transport implements it)."""

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool: ...

    def local_address(self, proto: str) -> tuple[str, int]: ...
