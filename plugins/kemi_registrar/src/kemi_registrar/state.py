"""registrar's per-process state: parameters, the usrloc service, $ulc profiles, counters."""

from __future__ import annotations

from typing import Any

import attrs

from kemi_core.api import Core, ModuleError
from kemi_registrar.params import RegParams
from kemi_registrar.update import Rules
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
    #: $ulc profiles: per process and kept across messages, as in Kamailio.
    profiles: dict[str, Profile] = attrs.Factory(dict)
    accepted: int = 0
    rejected: int = 0


class _Holder:
    current: State | None = None


_holder = _Holder()


def init(core: Core, params: RegParams) -> State:
    ul: Any = core.services.get("usrloc")
    if not isinstance(ul, Usrloc):
        raise ModuleError("registrar needs the usrloc module: loadmodule \"usrloc.so\" first")
    if core.registry.lookup("sl", "send_reply") is None:
        raise ModuleError("registrar needs the sl module: loadmodule \"sl.so\"")
    st = State(core, params, ul, Rules(ul.matching_mode, ul.cseq_delay, ul.desc_time_order))
    _holder.current = st
    return st


def state() -> State:
    st = _holder.current
    if st is None:
        raise ModuleError("registrar is not initialised")
    return st
