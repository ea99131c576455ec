"""registrar's per-process state: parameters, the usrloc service, $ulc profiles, counters."""

from __future__ import annotations

from typing import Any

import attrs

from kemi_core.api import Core, ModuleError
from kemi_registrar.params import RegParams
from kemi_registrar.request import forget_bindings, memoisable
from kemi_registrar.stats import RegStats
from kemi_registrar.update import Rules
from kemi_registrar.usual import consts
from kemi_usrloc.contact import Contact
from kemi_usrloc.service import Usrloc


@attrs.define
class Profile:
    """Contacts fetched by reg_fetch_contacts() for ``$ulc(name=>attr)``."""

    aor: str
    domain: str
    aorhash: int
    contacts: list[Contact]


@attrs.define
class State:
    core: Core
    params: RegParams
    ul: Usrloc
    rules: Rules
    stats: RegStats
    #: save() looks whole requests up in request._REQUESTS (request.memoisable)
    memo: bool
    #: $ulc profiles: per process and kept across messages, as in Kamailio.
    profiles: dict[str, Profile] = attrs.Factory(dict)
    #: what save()'s compiled usual case reads (usual.consts; None: save() runs in Python)
    usual: tuple[Any, ...] | None = None


class _Holder:
    core: Core | None = None
    params: RegParams | None = None
    #: the state once state() has made it (None before, and again after init())
    current: State | None = None


#: Read ``held.current or state()`` where a call costs (save() on the REGISTER path: the
#: same bytecodes as a private global, where an accessor function adds a call); only init()
#: and state() set it.
held = _Holder()


def check(core: Core) -> None:
    """At mod_init: the modules registrar works with are loaded (in any order)."""
    if "usrloc" not in core.loaded_modules:
        raise ModuleError("registrar needs the usrloc module: loadmodule \"usrloc.so\"")
    if "sl" not in core.loaded_modules:
        raise ModuleError("registrar needs the sl module: loadmodule \"sl.so\"")


def init(core: Core, params: RegParams) -> None:
    held.core, held.params = core, params
    held.current = None
    forget_bindings()  # they were computed with the previous parameters


def state() -> State:
    """The state, made at first use (usrloc's service exists by then, whatever the order of
    the loadmodule lines)."""
    st = held.current
    if st is not None:
        return st
    core, params = held.core, held.params
    if core is None or params is None:
        raise ModuleError("registrar is not initialised")
    ul = core.require("usrloc", Usrloc)
    st = held.current = State(core, params, ul,
                                 Rules(ul.matching_mode, ul.cseq_delay, ul.desc_time_order,
                                       int(core.config.extra.get("server_id") or 0)),
                                 RegStats(core), memoisable(params))
    st.usual = consts(st)
    return st
