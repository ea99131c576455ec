"""dispatcher's control commands, answering in Kamailio 5.6's shapes and words."""

from __future__ import annotations

from typing import Any

from kemi_core.api import Core, DbError, KemiError
from kemi_dispatcher.destinations import Dest
from kemi_dispatcher.hashing import ds_hash
from kemi_dispatcher.marks import mark
from kemi_dispatcher.service import DsService, ListError, ReloadRefused
from kemi_dispatcher.state import letters, parse_state


def register(core: Core, svc: DsService) -> None:
    def cmd(name: str, fn: Any, doc: str) -> None:
        core.add_rpc(name, lambda _core, params: fn(svc, params), doc)

    cmd("dispatcher.list", list_sets, "The destination sets with each destination's state")
    cmd("dispatcher.set_state", set_state,
        "Set a destination's state: state (a|i|t|d, +p) group address|all")
    cmd("dispatcher.reload", reload, "Load the destinations again (file or table)")
    cmd("dispatcher.ping_active", ping_active,
        "Keepalives on (1) or off (0); no parameter: the current state")
    cmd("dispatcher.hash", hash_values, "The hash of one or two values: nslots val1 [val2]")


#: what Kamailio sends for an attribute that is not set (its RPC layer's text for a null string)
NULL = "<null string>"


def _attrs(d: Dest) -> dict[str, Any]:
    return {"BODY": d.attrs, "DUID": d.duid or NULL, "MAXLOAD": d.maxload, "WEIGHT": d.weight,
            "RWEIGHT": d.rweight, "SOCKET": d.socket or NULL, "SOCKNAME": d.sockname or NULL,
            "OBPROXY": d.obproxy or NULL}


def list_sets(svc: DsService, params: list[Any]) -> dict[str, Any]:
    """Kamailio's layout: RECORDS holds one SET member per set, each SET's TARGETS one DEST
    member per destination (a list under a name repeats the name, as kamcmd shows it)."""
    dslist = svc.state.current()
    if not dslist.sets:
        raise KemiError("No Destination Sets")
    records = []
    for dset in dslist:
        st = svc.state.set_state(dset.setid)
        targets = []
        for i, d in enumerate(dset.dests):
            flags = st.flags[i] if st is not None and i < len(st.flags) else d.flags
            dest: dict[str, Any] = {"URI": d.uri, "FLAGS": letters(flags), "PRIORITY": d.priority}
            if d.attrs:
                dest["ATTRS"] = _attrs(d)
            targets.append(dest)
        records.append({"ID": dset.setid, "TARGETS": {"DEST": targets}})
    return {"NRSETS": len(dslist.sets), "RECORDS": {"SET": records}}


def set_state(svc: DsService, params: list[Any]) -> str:
    if len(params) < 3:
        raise KemiError("Invalid Parameters")
    state, group, address = str(params[0]), params[1], str(params[2])
    if parse_state(state) is None:
        raise KemiError("Unknown State Value")
    try:
        setid = int(group)
    except (TypeError, ValueError):
        raise KemiError("Invalid Parameters") from None
    if address == "all":
        if setid in svc.state.current().sets:
            mark(svc, setid, None, state, "rpc")
        return "Ok. Dispatcher state updated."
    if mark(svc, setid, address, state, "rpc") < 0:
        raise KemiError("State Update Failed")
    return "Ok. Dispatcher state updated."


def reload(svc: DsService, params: list[Any]) -> str:
    try:
        svc.reload()
    except ReloadRefused:
        raise KemiError("Ongoing reload") from None
    except (ListError, DbError):
        raise KemiError("Reload Failed") from None
    return "Ok. Dispatcher successfully reloaded."


def ping_active(svc: DsService, params: list[Any]) -> dict[str, Any]:
    old = 1 if svc.state.ping_active else 0
    if not params:
        return {"OldPingState": old}
    try:
        new = int(params[0])
    except (TypeError, ValueError):
        raise KemiError("Invalid Parameter") from None
    svc.state.ping_active = bool(new)
    return {"NewPingState": 1 if new else 0, "OldPingState": old}


def hash_values(svc: DsService, params: list[Any]) -> dict[str, Any]:
    if len(params) < 2:
        raise KemiError("Invalid Parameters")
    try:
        nslots = int(params[0])
    except (TypeError, ValueError):
        raise KemiError("Invalid Parameters") from None
    h = ds_hash(*(str(p) for p in params[1:3]))
    return {"hashid": h, "slot": h % nslots if nslots > 0 else 0}
