"""Pseudo-variables of the request's Digest credentials: $au $ad $aU $ar $adu $aa.

Kamailio's pv module has them; here they come with the auth module. They read the
Authorization header of a REGISTER (Proxy-Authorization for other requests, either one when
only the other is there); $null when there are no readable credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from kemi_auth.credentials import Credentials, parse_credentials
from kemi_core.api import PvValue

if TYPE_CHECKING:
    from kemi_core.api import Core, MsgContext


def request_credentials(ctx: MsgContext) -> Credentials | None:
    msg = ctx.msg
    if not msg.is_request:
        return None
    order = ("Authorization", "Proxy-Authorization")
    if msg.method != "REGISTER":
        order = order[::-1]
    for hf in order:
        value = msg.header(hf)
        if value is not None:
            try:
                return parse_credentials(value)
            except ValueError:
                return None
    return None


def _reader(field: Callable[[Credentials], str]) -> Callable[[MsgContext], PvValue]:
    def get(ctx: MsgContext) -> PvValue:
        cred = request_credentials(ctx)
        return None if cred is None else field(cred)
    return get


_PVS: tuple[tuple[str, Callable[[Credentials], str], str], ...] = (
    ("au", lambda c: c.user, "user part of the credentials' username"),
    ("ad", lambda c: c.domain, "domain part of the username (the realm when it has none)"),
    ("aU", lambda c: c.username, "the credentials' whole username"),
    ("ar", lambda c: c.realm, "the credentials' realm"),
    ("adu", lambda c: c.uri, "the credentials' digest URI"),
    ("aa", lambda c: c.algorithm, "the credentials' algorithm"),
)


def register_pvs(core: Core) -> None:
    for name, field, doc in _PVS:
        core.pv.register(name, _reader(field), doc=doc)
