"""The rr modparams the message functions read, taken from the core once per change of its
parameters (record_route reads six of them on every call)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import attrs

from kemi_core.api import Core

MODULE = "rr"


@attrs.frozen
class RrSettings:
    enable_full_lr: bool
    append_fromtag: bool
    #: 1: two entries when the socket changes, 2: always two
    enable_double_rr: int
    add_username: bool
    custom_user_avp: str
    ignore_sips: bool
    force_send_socket: bool


def read_settings(core: Core) -> RrSettings:
    def param(name: str) -> Any:
        return core.modparam(MODULE, name)
    return RrSettings(
        enable_full_lr=bool(param("enable_full_lr")),
        append_fromtag=bool(param("append_fromtag")),
        enable_double_rr=int(param("enable_double_rr") or 0),
        add_username=bool(param("add_username")),
        custom_user_avp=str(param("custom_user_avp") or ""),
        ignore_sips=bool(param("ignore_sips")),
        force_send_socket=bool(param("force_send_socket")),
    )


def _no_core() -> Core | None:
    return None


#: the settings of the last core asked, with its param_version then (one Core per process;
#: tests make many: a weak reference keeps none alive)
_last: tuple[Callable[[], Core | None], int, RrSettings | None] = (_no_core, -1, None)


def settings(core: Core) -> RrSettings:
    """``core``'s rr settings, read again after any set_param."""
    global _last
    ref, version, found = _last
    if found is not None and ref() is core and version == core.param_version:
        return found
    found = read_settings(core)
    _last = (weakref.ref(core), core.param_version, found)
    return found
