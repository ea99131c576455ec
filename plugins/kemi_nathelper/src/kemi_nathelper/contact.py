"""Contact and R-URI fixes for UAs behind NAT: source address into the Contact, ``;alias``,
``;received``, the received URI for registrar.

Each function edits the first Contact of the message in place (text spans, see uritext), so
every byte the UA wrote stays as written but the part that changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kemi_core.api import MsgContext, PvError, set_pv
from kemi_core.sip import SipParseError
from kemi_nathelper.uritext import (
    PROTO_NAMES,
    PROTO_NUMBERS,
    first_element,
    host_text,
    hostport_in_uri,
    params_end,
    uri_in_element,
    uri_param_spans,
)

log = logging.getLogger("kemi.nathelper")

SIP_PORT = 5060


class Settings:
    received_avp = ""
    alias_name = "alias"


settings = Settings()


def _contact_line(ctx: MsgContext) -> tuple[int, str] | None:
    """(line index among Contact lines = 0, raw value) of the first Contact header line."""
    value = ctx.msg.header("contact")
    if value is None or value.strip() == "*":
        return None
    return 0, value


def _first_uri(value: str) -> tuple[int, int, bool]:
    """Absolute (start, end, bracketed) of the first Contact's URI in a header value."""
    es, ee = first_element(value)
    us, ue, bracketed = uri_in_element(value[es:ee])
    return es + us, es + ue, bracketed


def _bracketed_first_uri(ctx: MsgContext, nth: int, value: str) -> tuple[str, int, int]:
    """(value, start, end) of the first Contact URI, a bare addr-spec given <...> first (in
    the message too), so a URI parameter added to it is not read as a header parameter
    (RFC 3261 20.10)."""
    start, end, bracketed = _first_uri(value)
    if not bracketed:
        ctx.msg.set_header_value("contact", f"{value[:start]}<{value[start:end]}>{value[end:]}",
                                 nth)
        value = ctx.msg.header("contact") or ""  # as the message now holds it
        start, end, _ = _first_uri(value)
    return value, start, end


#: the Contact values _edit_first_uri made, per (Contact value as received, what the change
#: depends on): a UA sends the same Contact in every request (the INVITE, ACK and BYE of a
#: call, its next calls); emptied when full
_EDITED: dict[tuple[str, ...], str] = {}
_EDITED_SIZE = 1024


def _edit_first_uri(ctx: MsgContext, change: Callable[[str], str],
                    bracket: bool = False, memo: tuple[str, ...] | None = None) -> int:
    """Apply ``change(uri_text) -> new uri_text`` to the first Contact URI (given <...> first
    when ``bracket``); 1 done, -1 when there is no usable Contact. ``memo``: every value the
    change depends on besides the URI (a change that succeeded is then kept: the same
    Contact value is given the same result without the work)."""
    found = _contact_line(ctx)
    if found is None:
        log.debug("nathelper: no Contact header to change")
        return -1
    nth, value = found
    key = None
    if memo is not None:
        key = (value, str(bracket), *memo)
        done = _EDITED.get(key)
        if done is not None:
            ctx.msg.set_header_value("contact", done, nth)
            return 1
    start, end, bracketed = _first_uri(value)
    pending = ""  # a bracketed value not written yet: written even when the change fails
    if bracket and not bracketed:
        if '"' in value:  # rare: write the brackets, then find the URI in what is written
            value, start, end = _bracketed_first_uri(ctx, nth, value)
        else:  # no quote: the same element, its URI moved by the '<'
            value = pending = f"{value[:start]}<{value[start:end]}>{value[end:]}"
            start, end = start + 1, end + 1
    uri = value[start:end]
    new = None
    if uri.lower().startswith(("sip:", "sips:")):
        try:
            new = change(uri)
        except ValueError as exc:
            log.error("nathelper: cannot change the Contact URI %s: %s", uri, exc)
    if new is None:
        if pending:
            ctx.msg.set_header_value("contact", pending, nth)
        return -1
    done = value[:start] + new + value[end:]
    ctx.msg.set_header_value("contact", done, nth)
    if key is not None:
        if len(_EDITED) >= _EDITED_SIZE:
            _EDITED.clear()
        _EDITED[key] = done
    return 1


def _proto(ctx: MsgContext) -> str:
    return ctx.rcv.proto.lower()


def received_uri(ctx: MsgContext) -> str:
    """``sip:ip:port`` of the source (``;transport=`` added unless UDP)."""
    uri = f"sip:{host_text(ctx.rcv.src_ip)}:{ctx.rcv.src_port}"
    proto = _proto(ctx)
    return uri if proto == "udp" else f"{uri};transport={proto}"


def fix_nated_contact(ctx: MsgContext) -> int:
    """Rewrite the host:port of the first Contact URI to the request's source ip:port."""
    new_hostport = f"{host_text(ctx.rcv.src_ip)}:{ctx.rcv.src_port}"

    def change(uri: str) -> str:
        hs, _, he = hostport_in_uri(uri)
        return uri[:hs] + new_hostport + uri[he:]

    return _edit_first_uri(ctx, change, memo=("hostport", new_hostport))


def _alias_value(ip: str, port: int | str, proto: str) -> str:
    number = PROTO_NUMBERS.get(proto.lower())
    if number is None:
        raise ValueError(f"unknown protocol {proto!r}")
    return f"{host_text(ip)}~{port}~{number}"


def _add_param(uri: str, param: str) -> str:
    end = params_end(uri)
    return uri[:end] + param + uri[end:]


def _drop_params(uri: str, name: str) -> str:
    for s, e in reversed(uri_param_spans(uri, name)):
        uri = uri[:s] + uri[e:]
    return uri


def set_contact_alias(ctx: MsgContext, trim: int = 0) -> int:
    """Add ``;alias=src_ip~src_port~proto`` to the first Contact URI (after removing an alias
    already there when ``trim``)."""
    name = settings.alias_name
    alias = f";{name}={_alias_value(ctx.rcv.src_ip, ctx.rcv.src_port, _proto(ctx))}"

    def change(uri: str) -> str:
        if trim:
            uri = _drop_params(uri, name)
        return _add_param(uri, alias)

    return _edit_first_uri(ctx, change, bracket=True, memo=("alias", alias, str(trim)))


def add_contact_alias(ctx: MsgContext) -> int:
    """Add ``;alias`` with the source address when it differs from the Contact URI's host,
    port or transport. 1 added, 2 nothing to add, -1 error."""
    try:
        contacts = ctx.msg.contacts
    except SipParseError:
        return -1
    if not contacts or contacts[0].is_star or contacts[0].uri is None:
        return -1
    uri = contacts[0].uri
    # as Kamailio 5.6: a URI without ;transport never counts as the same protocol
    same = (uri.host.strip("[]") == ctx.rcv.src_ip and (uri.port or SIP_PORT) == ctx.rcv.src_port
            and uri.transport == _proto(ctx))
    if same:
        return 2
    return add_contact_alias_addr(ctx, ctx.rcv.src_ip, str(ctx.rcv.src_port), _proto(ctx))


def add_contact_alias_addr(ctx: MsgContext, ip: str, port: str, proto: str) -> int:
    """Add ``;alias=ip~port~proto`` with the given address to the first Contact URI."""
    try:
        alias = f";{settings.alias_name}={_alias_value(ip.strip(), int(port), proto.strip())}"
    except ValueError as exc:
        log.error("add_contact_alias: %s", exc)
        return -1

    def change(uri: str) -> str:  # Kamailio puts it right after host:port
        end = hostport_in_uri(uri)[2]
        return uri[:end] + alias + uri[end:]

    return _edit_first_uri(ctx, change, bracket=True, memo=("alias_addr", alias))


def parse_alias(value: str) -> tuple[str, int, str]:
    """``ip~port~proto`` -> (ip, port, proto name)."""
    parts = value.split("~")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise ValueError(f"bad alias value {value!r}")
    proto = PROTO_NAMES.get(int(parts[2]))
    if proto is None:
        raise ValueError(f"bad protocol in alias {value!r}")
    return parts[0], int(parts[1]), proto


def alias_uri(value: str) -> str:
    ip, port, proto = parse_alias(value)
    uri = f"sip:{ip}:{port}"
    return uri if proto == "udp" else f"{uri};transport={proto}"


def handle_ruri_alias(ctx: MsgContext, mode: int = 0) -> int:
    """Route to the R-URI's ``;alias`` address ($du) and remove the parameter from the R-URI
    (mode 0: the first alias, else the last). 1 done, 2 no alias, -1 error."""
    msg = ctx.msg
    if not msg.is_request:
        return -1
    ruri = msg.ruri
    name = settings.alias_name
    if ":" in ruri and name.lower() not in ruri.lower():
        return 2  # the usual in-dialog R-URI: no such parameter can be there
    try:
        spans = uri_param_spans(ruri, name)
    except ValueError:
        return -1
    if not spans:
        return 2
    s, e = spans[0] if mode == 0 else spans[-1]
    _, eq, value = ruri[s + 1:e].partition("=")
    try:
        du = alias_uri(value.strip())
    except ValueError as exc:
        log.error("handle_ruri_alias: %s", exc)
        return -1
    try:
        msg.set_ruri(ruri[:s] + ruri[e:])
    except ValueError:
        return -1
    ctx.dst_uri = du
    return 1


def set_alias_to_pv(ctx: MsgContext, pvname: str) -> int:
    """Write the first Contact's ``;alias`` as a SIP URI into the variable ``pvname``."""
    found = _contact_line(ctx)
    if found is None:
        return -1
    _, value = found
    start, end, _ = _first_uri(value)
    uri = value[start:end]
    try:
        spans = uri_param_spans(uri, settings.alias_name)
        if not spans:
            return -1
        s, e = spans[0]
        target = alias_uri(uri[s + 1:e].partition("=")[2].strip())
        set_pv(ctx, pvname, target)
    except (ValueError, PvError) as exc:
        log.error("set_alias_to_pv: %s", exc)
        return -1
    return 1


def add_rcv_param(ctx: MsgContext, flag: int = 0) -> int:
    """Add ``received="sip:ip:port"`` to every Contact: as a header parameter (flag 0) or as a
    URI parameter (flag != 0)."""
    found = _contact_line(ctx)
    if found is None:
        return -1
    rcv = received_uri(ctx)
    msg = ctx.msg
    lines = [v for n, v in msg.iter_headers() if n.lower() in ("contact", "m")]
    for nth, value in enumerate(lines):
        new = _with_rcv(value, rcv, flag)
        if new is None:
            return -1
        msg.set_header_value("contact", new, nth)
    return 1


def _with_rcv(value: str, rcv: str, flag: int) -> str | None:
    out = []
    rest = value
    while rest.strip():
        es, ee = first_element(rest)
        element = rest[es:ee]
        if flag:
            us, ue, bracketed = uri_in_element(element)
            if not bracketed:
                element = f"<{element[us:ue]}>{element[ue:]}"
                us, ue = 1, ue + 1
            uri = element[us:ue]
            element = element[:us] + _add_param(uri, f";received={rcv}") + element[ue:]
        else:
            element = f'{element};received="{rcv}"'
        out.append(element)
        rest = rest[ee:].lstrip(" \t")
        if rest.startswith(","):
            rest = rest[1:]
    return ", ".join(out) if out else None


def fix_nated_register(ctx: MsgContext) -> int:
    """Store the source as a URI (``sip:ip:port[;transport=..]``) in ``received_avp``, which
    registrar saves as the contact's received address."""
    if not settings.received_avp:
        log.error("fix_nated_register: the received_avp parameter is not set")
        return -1
    if not ctx.msg.is_request or ctx.msg.method != "REGISTER":
        return 1
    try:
        set_pv(ctx, settings.received_avp, received_uri(ctx))
    except PvError as exc:
        log.error("fix_nated_register: %s", exc)
        return -1
    return 1

