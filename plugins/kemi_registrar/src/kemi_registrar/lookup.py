"""lookup() and its relatives: where to send a request for a registered AOR.

The R-URI becomes the best contact (highest q); the others become branches (append_branches).
``$du`` becomes the first Path hop when the contact came through a Path (the Route headers
of the Path are added to each branch by tm), else the received address (NAT), the branch
flags saved with the contact are restored, and the request leaves from the socket the contact
registered through (each branch from its contact's), as Kamailio's lookup forces it.
"""

from __future__ import annotations

import logging
from typing import Any

from kemi_core.api import Branch, MsgContext, parse_socket
from kemi_core.sip import SipParseError, parse_uri
from kemi_registrar.aor import AorError, aor_of, first_uri, method_bit
from kemi_registrar.state import state
from kemi_usrloc.contact import Contact
from kemi_usrloc.domain import UsrlocDbError

log = logging.getLogger("kemi.registrar")

#: ctx.extra key of branch 0's Path vector (tm turns it into Route headers).
PATH_VEC = "path_vec"

FOUND, NOT_FOUND, METHOD_FILTERED, INTERNAL = 1, -1, -2, -3


def _aor(ctx: MsgContext, uri: str | None) -> str:
    st = state()
    return aor_of(uri or ctx.msg.ruri, st.ul.use_domain, st.params.case_sensitive,
                  st.params.realm_prefix)


def usable_contacts(ctx: MsgContext, table: str, aor: str) -> tuple[int, list[Contact]]:
    """(code, contacts) after the expiry, method and branch-flag filters."""
    st = state()
    p = st.params
    contacts = st.ul.domain(table).get(aor)
    now = ctx.core.clock.wall()
    found = [c for c in contacts if p.use_expired_contacts or c.alive(now)]
    if not found:
        return NOT_FOUND, []
    msg = ctx.msg
    if p.method_filtering and msg.is_request and _initial(ctx):
        bit = method_bit(msg.method)
        found = [c for c in found if c.methods & bit]
        if not found:
            return METHOD_FILTERED, []
    if p.lookup_filter_mode & 1 and p.xavp_cfg:
        items = ctx.xavps.get(p.xavp_cfg)
        wanted = items[0].get("rlf_bflags") if items else None
        if wanted:
            found = [c for c in found if c.cflags & int(wanted)]
            if not found:
                return NOT_FOUND, []
    return FOUND, found


def _initial(ctx: MsgContext) -> bool:
    try:
        return ctx.msg.to.tag is None
    except SipParseError:
        return True


def destination(ctx: MsgContext, c: Contact) -> str | None:
    """$du for a contact: its first Path hop (unless it is us and path_check_local), else
    the address it registered from (received)."""
    p = state().params
    if c.path:
        hop = first_uri(c.path)
        if p.path_check_local and _is_local(ctx, hop):
            return c.received
        return hop
    return c.received


def _is_local(ctx: MsgContext, uri: str) -> bool:
    try:
        u = parse_uri(uri)
    except SipParseError:
        return False
    return ctx.core.is_myself(u.host, u.port)


def lookup(ctx: MsgContext, table: str, uri: str | None = None, to_dset: bool = False) -> int:
    """Kamailio's lookup(): 1 found, -1 not found, -2 found but the method is not allowed,
    -3 internal error."""
    if not ctx.msg.is_request:
        return INTERNAL
    try:
        aor = _aor(ctx, uri)
        code, contacts = usable_contacts(ctx, table, aor)
    except AorError as exc:
        log.error("lookup: %s", exc)
        return INTERNAL
    except UsrlocDbError:
        return INTERNAL
    if code != FOUND:
        return code
    st = state()
    rest = contacts
    if not to_dset:
        first, rest = contacts[0], contacts[1:]
        ctx.msg.set_ruri(first.c)
        du = destination(ctx, first)
        if du is not None:
            ctx.dst_uri = du
        if first.path:
            ctx.extra[PATH_VEC] = first.path
        else:
            ctx.extra.pop(PATH_VEC, None)
        ctx.bflags = first.cflags
        sock = _local_socket(ctx, first)
        if sock is not None:
            ctx.send_socket = sock
        _record(ctx, first)
        if not st.params.append_branches:
            rest = []
    for c in rest:
        ctx.branches.append(Branch(uri=c.c, dst_uri=destination(ctx, c), path=c.path,
                                   q=c.q, flags=c.cflags, instance=c.instance, ruid=c.ruid,
                                   send_socket=_local_socket(ctx, c)))
        _record(ctx, c)
    return FOUND


def _local_socket(ctx: MsgContext, c: Contact) -> str | None:
    """The socket ``c`` registered through, when it is one of this server's listen sockets
    (a binding another server saved in a shared database names its own: none then)."""
    parts = parse_socket(c.socket) if c.socket else None
    if parts is None:
        return None
    proto, host, port = parts
    for lst in ctx.core.config.listen:
        if lst.proto == proto and lst.host == host and lst.port == port:
            return c.socket
    return None


def _record(ctx: MsgContext, c: Contact) -> None:
    """xavp_rcd: the record of each contact used (ruid, contact, expires, received, path)."""
    p = state().params
    if not p.xavp_rcd:
        return
    mask = p.xavp_rcd_mask
    item: dict[str, Any] = {}
    if not mask & 1:
        item["ruid"] = c.ruid
    if not mask & 2:
        item["contact"] = c.c
    if not mask & 4:
        item["expires"] = c.expires
    if not mask & 8 and c.received:
        item["received"] = c.received
    if not mask & 16 and c.path:
        item["path"] = c.path
    ctx.xavps.setdefault(p.xavp_rcd, []).insert(0, item)


def lookup_branches(ctx: MsgContext, table: str) -> int:
    """lookup() on the R-URI and on every branch that has nothing but a URI."""
    plain = [b for b in ctx.branches
             if b.dst_uri is None and b.path is None and b.ruid is None and b.instance is None]
    others = [b for b in ctx.branches if b not in plain]
    ctx.branches = others
    rc = lookup(ctx, table)
    for b in plain:
        try:
            code, contacts = usable_contacts(ctx, table, _aor(ctx, b.uri))
        except (AorError, UsrlocDbError):
            code, contacts = INTERNAL, []
        if code != FOUND:
            ctx.branches.append(b)  # kept as it was, as Kamailio leaves unmatched branches
            continue
        for c in contacts if state().params.append_branches else contacts[:1]:
            ctx.branches.append(Branch(uri=c.c, dst_uri=destination(ctx, c), path=c.path,
                                       q=c.q, flags=c.cflags, instance=c.instance, ruid=c.ruid,
                                       send_socket=_local_socket(ctx, c)))
        rc = FOUND
    return rc


def registered(ctx: MsgContext, table: str, uri: str | None = None, match_flags: int = 0,
               match_action: int = 0) -> int:
    """1 when the AOR has a live contact (matching the xavp_cfg filters), else -1."""
    st = state()
    p = st.params
    msg = ctx.msg
    try:
        if uri is None:
            uri = msg.ruri if msg.is_request else msg.to.uri_text
        aor = aor_of(uri, st.ul.use_domain, p.case_sensitive, p.realm_prefix)
        contacts = st.ul.domain(table).get(aor)
    except (AorError, SipParseError, UsrlocDbError):
        return NOT_FOUND
    now = ctx.core.clock.wall()
    wanted: dict[str, Any] = {}
    if match_flags and p.xavp_cfg:
        items = ctx.xavps.get(p.xavp_cfg)
        wanted = items[0] if items else {}
    for c in contacts:
        if not (c.alive(now) or p.use_expired_contacts):
            continue
        if match_flags & 1 and wanted.get("match_callid") not in (None, c.callid):
            continue
        if match_flags & 2 and wanted.get("match_received") not in (None, c.received):
            continue
        if match_flags & 4 and wanted.get("match_contact") not in (None, c.c):
            continue
        if not match_action & 2:
            _record(ctx, c)
        return FOUND
    return NOT_FOUND
