"""registrar.so: REGISTER processing and location lookups (Kamailio's registrar module).

save() applies a REGISTER to usrloc and answers it (RFC 3261 10.3, Path of RFC 3327,
+sip.instance/reg-id kept); lookup() sends a request to the registered contacts. The location
table is usrloc's (loadmodule "usrloc.so" first), shared by every worker, so a registration
saved by one worker is found by a lookup in any other at its very next message.

KEMI (``KSR.registrar.*``) and native cfg functions with Kamailio 5.6's names, parameters and
return codes; ``$ulc(profile=>attr)`` after reg_fetch_contacts(). Statistics as Kamailio's
(``kamcmd stats.get_statistics registrar:``): ``accepted_regs``, ``rejected_regs`` and the
expiry/contact settings (:mod:`kemi_registrar.stats`).
"""

from __future__ import annotations

from typing import Any

import attrs

from kemi_core.api import (
    CfgFunction,
    Core,
    KemiExport,
    MsgContext,
    export,
    hookimpl,
)
from kemi_core.sip import registrar_saver
from kemi_registrar import lookup as lk
from kemi_registrar import params, records
from kemi_registrar import save as sv
from kemi_registrar.params import MODULE
from kemi_registrar.state import check, held, init
from kemi_registrar.stats import RegStats, publish_settings

# ---- KEMI functions -------------------------------------------------------------------------


def save(ctx: MsgContext, table: str, flags: int) -> int:
    """Save the REGISTER's contacts to ``table`` and reply (flags: 0x01 memory only, 0x02 no
    reply, 0x04 one contact per AOR, 0x08 no expires range, 0x10 prepare the reply).
    Returns 1 inserted, 2 updated, 3 deleted, 4 contacts returned, -1 error, -2 too many."""
    return sv.save(ctx, table, flags)


def save_uri(ctx: MsgContext, table: str, flags: int, uri: str) -> int:
    """save() for the AOR of ``uri`` instead of the To URI."""
    return sv.save(ctx, table, flags, uri or None)


def lookup(ctx: MsgContext, table: str) -> int:
    """Rewrite the R-URI to the contacts of its AOR (others as branches), each sent from the
    socket it registered through. Returns 1 found, -1 not found, -2 found but the method is
    not allowed, -3 internal error."""
    return lk.lookup(ctx, table)


def lookup_uri(ctx: MsgContext, table: str, uri: str) -> int:
    """lookup() for the AOR of ``uri`` instead of the R-URI."""
    return lk.lookup(ctx, table, uri or None)


def lookup_to_dset(ctx: MsgContext, table: str, uri: str) -> int:
    """Add the contacts of the AOR (of ``uri``, else the R-URI) as branches, R-URI unchanged."""
    return lk.lookup(ctx, table, uri or None, to_dset=True)


def lookup_branches(ctx: MsgContext, table: str) -> int:
    """lookup() on the R-URI and on every branch that carries only a URI."""
    return lk.lookup_branches(ctx, table)


def registered(ctx: MsgContext, table: str) -> int:
    """1 when the AOR of the R-URI (To URI for replies) has a live contact, else -1."""
    return lk.registered(ctx, table)


def registered_uri(ctx: MsgContext, table: str, uri: str) -> int:
    """registered() for the AOR of ``uri``."""
    return lk.registered(ctx, table, uri or None)


def registered_flags(ctx: MsgContext, table: str, uri: str, match_flags: int) -> int:
    """registered() matching the xavp_cfg values (1 callid, 2 received, 4 contact)."""
    return lk.registered(ctx, table, uri or None, match_flags)


def registered_action(ctx: MsgContext, table: str, uri: str, match_flags: int,
                      match_action: int) -> int:
    """registered() with match flags and actions (2: do not fill xavp_rcd)."""
    return lk.registered(ctx, table, uri or None, match_flags, match_action)


def set_q_override(ctx: MsgContext, q: str) -> int:
    """The q that save() gives the contacts of the current REGISTER."""
    return records.set_q_override(ctx, q)


def add_sock_hdr(ctx: MsgContext, hdr_name: str) -> int:
    """Add a header naming the socket the request came in on (proto:ip:port)."""
    return records.add_sock_hdr(ctx, hdr_name)


def unregister(ctx: MsgContext, table: str, uri: str) -> int:
    """Remove every contact of the AOR of ``uri``: 1 done, -1 bad URI, -2 error, -3 none."""
    return records.unregister(ctx, table, uri)


def unregister_ruid(ctx: MsgContext, table: str, uri: str, ruid: str) -> int:
    """Remove the contact with record id ``ruid`` (``uri`` may be empty with db_mode 3)."""
    return records.unregister(ctx, table, uri, ruid)


def reg_fetch_contacts(ctx: MsgContext, table: str, uri: str, profile: str) -> int:
    """Load the contacts of the AOR of ``uri`` into ``$ulc(profile=>...)``: 1 or -1."""
    return records.reg_fetch_contacts(ctx, table, uri, profile)


def reg_free_contacts(ctx: MsgContext, profile: str) -> int:
    """Forget the contacts of ``$ulc(profile)``."""
    return records.reg_free_contacts(ctx, profile)


def reg_send_reply(ctx: MsgContext) -> int:
    """Send the reply that save(..., 0x02) prepared."""
    return sv.reg_send_reply(ctx)


def exports() -> list[KemiExport]:
    return [
        attrs.evolve(export(MODULE, "save", save, "si"), func=_save_compiled),
        export(MODULE, "save_uri", save_uri, "sis"),
        export(MODULE, "lookup", lookup, "s"),
        export(MODULE, "lookup_uri", lookup_uri, "ss"),
        export(MODULE, "lookup_to_dset", lookup_to_dset, "ss"),
        export(MODULE, "lookup_branches", lookup_branches, "s"),
        export(MODULE, "registered", registered, "s"),
        export(MODULE, "registered_uri", registered_uri, "ss"),
        export(MODULE, "registered_flags", registered_flags, "ssi"),
        export(MODULE, "registered_action", registered_action, "ssii"),
        export(MODULE, "set_q_override", set_q_override, "s"),
        export(MODULE, "add_sock_hdr", add_sock_hdr, "s"),
        export(MODULE, "unregister", unregister, "ss"),
        export(MODULE, "unregister_ruid", unregister_ruid, "sss"),
        export(MODULE, "reg_fetch_contacts", reg_fetch_contacts, "sss"),
        export(MODULE, "reg_free_contacts", reg_free_contacts, "s"),
        export(MODULE, "reg_send_reply", reg_send_reply, ""),
    ]


# ---- native cfg functions (strings may hold pseudo-variables, as Kamailio's fixups) -------
def _fmt(ctx: MsgContext, text: str) -> str:
    return ctx.core.pv.format(text)(ctx) if "$" in text else text


#: flags written without pseudo-variables, as numbers: read once, not at every save()
_CONST_FLAGS: dict[str, int] = {}


def _flags(ctx: MsgContext, text: str) -> int:
    number = _CONST_FLAGS.get(text)
    if number is not None:
        return number
    value = _fmt(ctx, text).strip()
    try:
        number = int(value, 0) if value else 0
    except ValueError:
        number = int(value, 16) if value.lower().startswith("0x") else 0
    if "$" not in text and len(_CONST_FLAGS) < 256:
        _CONST_FLAGS[text] = number
    return number


def _cfg_save(ctx: MsgContext, table: str, flags: str = "0", uri: str = "") -> int:
    number = _CONST_FLAGS.get(flags)  # (_flags' usual case without its call)
    return sv.save(ctx, table, _flags(ctx, flags) if number is None else number,
                   (_fmt(ctx, uri) or None) if uri else None)


def _cfg_lookup(ctx: MsgContext, table: str, uri: str = "") -> int:
    return lk.lookup(ctx, table, _fmt(ctx, uri) or None)


def _cfg_lookup_to_dset(ctx: MsgContext, table: str, uri: str = "") -> int:
    return lk.lookup(ctx, table, _fmt(ctx, uri) or None, to_dset=True)


def _cfg_registered(ctx: MsgContext, table: str, uri: str = "", match: str = "0",
                    action: str = "0") -> int:
    return lk.registered(ctx, table, _fmt(ctx, uri) or None, _flags(ctx, match),
                         _flags(ctx, action))


def _cfg_unregister(ctx: MsgContext, table: str, uri: str, ruid: str = "") -> int:
    return records.unregister(ctx, table, _fmt(ctx, uri), _fmt(ctx, ruid))


def _cfg_fetch(ctx: MsgContext, table: str, uri: str, profile: str) -> int:
    return records.reg_fetch_contacts(ctx, table, _fmt(ctx, uri), profile)


#: save() as KEMI and the native cfg call it: its usual case in one compiled call
#: (kemi_core.sip.registrar_saver: the flags, held.current's usual consts, reg_save_usual,
#: save_rest when it declines); the Python forms above for every other shape
_save_compiled: Any = save
_cfg_save_compiled: Any = _cfg_save
if registrar_saver is not None:
    _save_compiled = registrar_saver((False, held, {}, vars(sv), save, sv.save_rest))
    _cfg_save_compiled = registrar_saver((True, held, _CONST_FLAGS, vars(sv), _cfg_save,
                                          sv.save_rest))


CFG_FUNCTIONS: tuple[tuple[str, Any, int, int], ...] = (
    ("save", _cfg_save_compiled, 1, 3),
    ("lookup", _cfg_lookup, 1, 2),
    ("lookup_to_dset", _cfg_lookup_to_dset, 1, 2),
    ("lookup_branches", lambda ctx, table: lk.lookup_branches(ctx, table), 1, 1),
    ("registered", _cfg_registered, 1, 4),
    ("add_sock_hdr", lambda ctx, name: records.add_sock_hdr(ctx, _fmt(ctx, name)), 1, 1),
    ("unregister", _cfg_unregister, 2, 3),
    ("reg_fetch_contacts", _cfg_fetch, 3, 3),
    ("reg_free_contacts", lambda ctx, profile: records.reg_free_contacts(ctx, profile), 1, 1),
    ("reg_send_reply", lambda ctx: sv.reg_send_reply(ctx), 0, 0),
)


# ---- hooks -------------------------------------------------------------------------------------
@hookimpl
def mod_register(core: Core) -> None:
    params.declare(core)
    for name, func, lo, hi in CFG_FUNCTIONS:
        core.add_cfg_function(CfgFunction(MODULE, name, func, lo, hi))
    core.pv.register("ulc", records.ulc_value, takes_arg=True, parse_arg=records.parse_ulc,
                index_getter=records.ulc_get, replace=True,
                doc="$ulc(profile=>attr): contacts fetched by reg_fetch_contacts()")


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    check(core)
    settings = params.read(core)
    init(core, settings)
    RegStats(core)  # declared at start, so they read 0 before the first REGISTER
    publish_settings(core, settings)
