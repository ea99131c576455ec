"""The reply to a REGISTER, header by header as Kamailio 5.6 builds it.

200 OK: ``Contact`` with every live binding of the AOR in one header, comma-separated, each
``<uri>;q=..;expires=..;received=".."[;+sip.instance=".."][;reg-id=..]``; then ``Path`` when
echoed, ``Flow-Timer`` when configured, and (kemi, RFC 3261 10.3 item 8) ``Date``.
An error: the status with ``P-Registrar-Error: <why>``; ``Min-Expires`` (423) or
``Retry-After`` (503) where Kamailio adds them; the AOR's current bindings when the error was
found while going through the contacts. The reply goes out through sl's ``send_reply`` (so it
is stateful when tm holds a transaction), with anything the script appended.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from email.utils import formatdate
from functools import partial
from typing import Any

from kemi_core.api import MsgContext, SlApi
from kemi_core.sip import reg_contact_value, reg_ok_headers
from kemi_registrar.params import RegParams
from kemi_registrar.request import RegError
from kemi_usrloc.contact import Q_UNSPECIFIED, Contact, q_text

log = logging.getLogger("kemi.registrar")

#: ctx.mod_state key of a reply prepared by save(..., 0x02) for reg_send_reply().
PENDING = "registrar.reply"

Headers = list[tuple[str, str]]


def contact_header(contacts: list[Contact], now: float, p: RegParams) -> str | None:
    """The Contact value listing the live bindings (None when there is none)."""
    parts = []
    whole_now = int(now)
    received_param = p.received_param
    for c in contacts:
        expires = c.expires  # Contact.alive() and remaining(), inlined: run for every 200
        if expires and expires <= now:
            continue
        # (alive: expires > now >= whole_now, so what is left is positive)
        left = expires - whole_now if expires else 0
        q = c.q
        item = (f"<{c.c}>;expires={left}" if q == Q_UNSPECIFIED
                else f"<{c.c}>;q={q_text(q)};expires={left}")
        if c.received and received_param:
            item += f';{received_param}="{c.received}"'
        if c.instance is not None:
            item += f';+sip.instance="{c.instance}"'
        if c.reg_id:
            item += f";reg-id={c.reg_id}"
        parts.append(item)
    return ", ".join(parts) if parts else None


#: [second, its RFC 1123 date]: the Date header formatted once per second
_last_date: list[Any] = [0, ""]
#: a second's RFC 1123 date (what _last_date holds; the compiled forms call it)
date_of = partial(formatdate, usegmt=True)


def _contact_header_c(contacts: list[Contact], now: float, p: RegParams) -> str | None:
    """contact_header's compiled form."""
    return reg_contact_value(contacts, now, p.received_param, q_text)  # type: ignore[misc]


#: contact_header as the replies use it: its compiled form when built
contact_value = contact_header if reg_contact_value is None else _contact_header_c


def ok_headers_py(contacts: list[Contact], now: float, p: RegParams,
                  path_reply: str | None) -> Headers:
    """The 200's headers (ok_headers' Python form)."""
    headers: Headers = []
    value = contact_value(contacts, now, p)
    if value:
        headers.append(("Contact", value))
    if path_reply:
        headers.append(("Path", path_reply))
    if p.flow_timer > 0:
        headers.append(("Flow-Timer", str(p.flow_timer)))
    if p.date_header:
        whole = int(now)  # _date(whole) inlined: a call less for every 200
        if _last_date[0] != whole:
            _last_date[:] = [whole, formatdate(whole, usegmt=True)]
        headers.append(("Date", str(_last_date[1])))
    return headers


#: ok_headers(contacts, now, p, path_reply): the 200's headers, compiled when built
ok_headers: Callable[[list[Contact], float, RegParams, str | None], Headers] = (
    ok_headers_py if reg_ok_headers is None
    else partial(reg_ok_headers, q_text, _last_date, date_of))


def error_headers(err: RegError, contacts: list[Contact], now: float, p: RegParams) -> Headers:
    headers: Headers = []
    if err.late:
        value = contact_value(contacts, now, p)
        if value:
            headers.append(("Contact", value))
    extra = list(err.headers)
    headers += [h for h in extra if h[0] != "Retry-After"]
    headers.append(("P-Registrar-Error", err.detail))
    if err.code == 503 and p.retry_after > 0:
        headers.append(("Retry-After", str(p.retry_after)))
    return headers


#: (core, sl's service) last looked up: the same for every reply of a server
_sl: list[Any] = [None, None]


def send(ctx: MsgContext, code: int, reason: str, headers: Headers) -> bool:
    """Reply through sl's send_reply (stateful when tm holds a transaction) with ``headers``
    after the script's own (which stay queued, as they were)."""
    core = ctx.core
    if _sl[0] is core:
        sl = _sl[1]
    else:
        sl = core.service("sl", SlApi)
        _sl[:] = [core, sl]
    if sl is None:
        log.error("registrar: the sl module is not loaded: no reply sent")
        return False
    return sl.send_reply(ctx, code, reason, headers) > 0
