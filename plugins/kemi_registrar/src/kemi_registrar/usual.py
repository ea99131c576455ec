"""save()'s usual REGISTER in one compiled call (kemi_core.sip's reg_save_usual).

The usual REGISTER: a phone refreshing (or making) its one binding with a request
parse_request already knows, on a location table kept in the shared store (usrloc db_mode 0,
1 or 2). reg_save_usual does for it what save() does, step for step: the memoised request,
usrloc's update_one (the store's write transaction with the compiled change; write-through by
usrloc's write_one, a database error answered by save.db_failed), the accepted counter, the
200 with its Contact and Date through sl's send_reply. Any other shape
makes it return None before anything changed, and save()'s Python path runs: that path stays
the reference (tests/test_registrar_save_usual.py runs both on the same requests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kemi_core.api import SharedTable, SlApi
from kemi_core.sip import reg_save_usual
from kemi_registrar import reply
from kemi_registrar.request import _PHONE_HEADERS, _REQUESTS, Request
from kemi_registrar.update import ONE
from kemi_usrloc.contact import q_text
from kemi_usrloc.domain import _CHANGE_ONE, MemDomain, UsrlocDbError, _change_one_back

if TYPE_CHECKING:
    from kemi_registrar.state import State

#: save()'s call of it: reg_save_usual(consts, ctx, table, flags, uri) -> code or None
save_usual = reg_save_usual

#: ctx.mod_state key of a q set by set_q_override() (save() reads it)
Q_OVERRIDE = "registrar.q"


def consts(st: State) -> tuple[Any, ...] | None:
    """What reg_save_usual reads besides the call's arguments (its U_* order), or None when it
    cannot run for this state: not built, requests not memoised, or no sl module."""
    never = SharedTable.NEVER_CONSTS
    if reg_save_usual is None or never is None or not st.memo:
        return None
    sl = st.core.service("sl", SlApi)
    if sl is None:
        return None
    from kemi_registrar.save import db_failed  # (save imports this module)

    p, ul = st.params, st.ul
    return (ul.domains, MemDomain, _REQUESTS, _PHONE_HEADERS, Request, st.rules, p,
            st.stats.accepted, sl.send_reply, q_text, reply._last_date, reply.date_of, ONE,
            _CHANGE_ONE, ul.use_domain,
            p.expires_range > 0 or p.default_expires_range > 0, Q_OVERRIDE, ul, never,
            SharedTable.MAX_KEY, (200, "OK"), UsrlocDbError, db_failed, _change_one_back)
