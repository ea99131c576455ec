"""permissions.so: IP address access control (Kamailio's permissions module, its address and
trusted tables).

``allow_source_address(group)`` is true when the request's source address and port match a
row of the ``address`` table in that group (exact address, subnet, or DNS name; port 0 matches
any port); the official example uses it (``WITH_IPAUTH``) to let trusted peers call without
digest authentication. The tables are read at start and by ``permissions.addressReload`` /
``permissions.trustedReload``, and shared by every worker (a reload is seen by all of them at
their next check). The allow/deny files (allow_routing, allow_register, allow_uri) are not
provided.
"""

from __future__ import annotations

import logging
from typing import Any

from kemi_core.api import (
    CfgFunction,
    Core,
    DbError,
    KemiExport,
    ModuleError,
    MsgContext,
    export,
    hookimpl,
    set_pv,
    shared_store,
)
from kemi_core.sip import SipParseError
from kemi_permissions.addresses import InvalidRecord, Match
from kemi_permissions.cache import MODULE, STORE_TABLE, Loader
from kemi_permissions.trusted import TrustedRow, TrustedTable

log = logging.getLogger("kemi.permissions")

_PARAMS: tuple[tuple[str, type, Any, str], ...] = (
    ("db_url", str, "", "database of the address and trusted tables"),
    ("address_table", str, "address", ""),
    ("grp_col", str, "grp", ""), ("ip_addr_col", str, "ip_addr", ""),
    ("mask_col", str, "mask", ""), ("port_col", str, "port", ""), ("tag_col", str, "tag", ""),
    ("address_file", str, "", "rows 'grp address [mask [port [tag]]]' instead of the database"),
    ("db_mode", int, 0, "trusted table: 0 read per check, 1 cached"),
    ("trusted_table", str, "trusted", ""), ("source_col", str, "src_ip", ""),
    ("proto_col", str, "proto", ""), ("from_col", str, "from_pattern", ""),
    ("ruri_col", str, "ruri_pattern", ""), ("priority_col", str, "priority", ""),
    ("peer_tag_avp", str, "", "AVP given the tag of the matching row ($avp(name))"),
    ("peer_tag_mode", int, 0, "allow_trusted: 1 tags of every match, returns their number"),
    ("max_subnets", int, 512, "accepted for compatibility"),
    ("load_backends", int, 0xFFFF, "1 address table, 2 trusted table (a sum)"),
    ("reload_delta", int, 5, "seconds between two reloads of one table"),
    ("default_allow_file", str, "permissions.allow", "accepted (allow files are not provided)"),
    ("default_deny_file", str, "permissions.deny", "accepted (allow files are not provided)"),
    ("check_all_branches", int, 1, "accepted for compatibility"),
    ("allow_suffix", str, ".allow", "accepted for compatibility"),
    ("deny_suffix", str, ".deny", "accepted for compatibility"),
)


class _State:
    loader: Loader | None = None
    tag_avp: str = ""
    tag_mode: int = 0
    db_mode: int = 0


_state = _State()


def _loader() -> Loader:
    if _state.loader is None:
        raise ModuleError("permissions: used before mod_init")
    return _state.loader


def exports() -> list[KemiExport]:
    return [
        export(MODULE, "allow_source_address", allow_source_address, "i"),
        export(MODULE, "allow_source_address_group", allow_source_address_group, ""),
        export(MODULE, "allow_address", allow_address, "isi"),
        export(MODULE, "allow_address_group", allow_address_group, "si"),
        export(MODULE, "allow_trusted", allow_trusted, ""),
        export(MODULE, "allow_trusted_args", allow_trusted_args, "sss"),
    ]


def _x(ctx: MsgContext, text: str) -> str:
    return ctx.core.pv.format(text)(ctx) if "$" in text else text


def _int(ctx: MsgContext, text: str | int) -> int:
    if isinstance(text, int):
        return text
    try:
        return int(_x(ctx, text).strip() or 0)
    except ValueError:
        return -1


_CFG: tuple[tuple[str, Any, int, int], ...] = (
    ("allow_source_address", lambda ctx, g="1": allow_source_address(ctx, _int(ctx, g)), 0, 1),
    ("allow_source_address_group", lambda ctx: allow_source_address_group(ctx), 0, 0),
    ("allow_address", lambda ctx, g, a, p: allow_address(ctx, _int(ctx, g), _x(ctx, a),
                                                         _int(ctx, p)), 3, 3),
    ("allow_address_group", lambda ctx, a, p: allow_address_group(ctx, _x(ctx, a),
                                                                  _int(ctx, p)), 2, 2),
    ("allow_trusted", lambda ctx, s="", p="", f="": allow_trusted_args(
        ctx, _x(ctx, s), _x(ctx, p), _x(ctx, f)) if s else allow_trusted(ctx), 0, 3),
)


@hookimpl
def mod_register(core: Core) -> None:
    for name, kind, default, doc in _PARAMS:
        core.declare_param(MODULE, name, kind, default, doc=doc)
    for name, func, lo, hi in _CFG:
        core.add_cfg_function(CfgFunction(MODULE, name, func, lo, hi))
    core.add_rpc("permissions.addressReload", lambda c, p: _loader().reload("address"),
                 "re-read the address table")
    core.add_rpc("permissions.addressDump", _rpc_address_dump, "the exact addresses")
    core.add_rpc("permissions.subnetDump", _rpc_subnet_dump, "the subnets")
    core.add_rpc("permissions.domainDump", _rpc_domain_dump, "the DNS names")
    core.add_rpc("permissions.trustedReload", lambda c, p: _loader().reload("trusted"),
                 "re-read the trusted table")
    core.add_rpc("permissions.trustedDump", _rpc_trusted_dump, "the trusted table")


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    loader = Loader(core, shared_store(core).table(STORE_TABLE))
    try:
        loader.load_all(int(core.modparam(MODULE, "load_backends")))
    except (InvalidRecord, OSError) as exc:
        raise ModuleError(f"permissions: reload of address table failed: {exc}")
    _state.loader = loader
    avp = str(core.modparam(MODULE, "peer_tag_avp") or "")
    if avp and not (avp.startswith("$avp(") and avp.endswith(")")):
        raise ModuleError(f"permissions: peer_tag_avp {avp!r} is not an AVP ($avp(name))")
    _state.tag_avp = avp
    _state.tag_mode = int(core.modparam(MODULE, "peer_tag_mode"))
    _state.db_mode = int(core.modparam(MODULE, "db_mode"))


# ---- address table ----------------------------------------------------------------------
def _tag(ctx: MsgContext, match: Match) -> None:
    if _state.tag_avp and match.tag is not None:
        set_pv(ctx, _state.tag_avp, match.tag)


def allow_address(ctx: MsgContext, group: int, addr: str, port: int) -> int:
    """1 when ``addr`` (an IP address or a DNS name, matched exactly) and ``port`` match a row
    of the address table in ``group`` (port 0 in the row matches any port), else -1."""
    match = _loader().addresses.current().find(addr, port, group)
    if match is None:
        return -1
    _tag(ctx, match)
    return 1


def allow_source_address(ctx: MsgContext, group: int) -> int:
    """allow_address(group, $si, $sp): 1 when the request's source matches a row of
    ``group`` (1 when omitted in kamailio.cfg), else -1."""
    return allow_address(ctx, group, ctx.rcv.src_ip, ctx.rcv.src_port)


def allow_address_group(ctx: MsgContext, addr: str, port: int) -> int:
    """The group of the first row matching ``addr:port`` (exact addresses before subnets),
    -1 when none does."""
    match = _loader().addresses.current().find(addr, port)
    if match is None:
        return -1
    _tag(ctx, match)
    return match.grp


def allow_source_address_group(ctx: MsgContext) -> int:
    """allow_address_group($si, $sp)."""
    return allow_address_group(ctx, ctx.rcv.src_ip, ctx.rcv.src_port)


# ---- trusted table ----------------------------------------------------------------------
def allow_trusted_args(ctx: MsgContext, src_ip: str, proto: str, furi: str) -> int:
    """1 when a trusted-table row has this source address and transport (or any) and its
    patterns match the From URI (``furi``, else the request's) and the R-URI; with
    peer_tag_mode 1 the number of matching rows. -1 when none matches."""
    loader = _loader()
    table = loader.trusted.current()
    if _state.db_mode == 0 and loader.db is not None:
        try:
            table = TrustedTable(TrustedRow(*r) for r in loader.read_trusted())
        except (DbError, ValueError):  # a refusal; the database layer has logged why
            return -1
    msg = ctx.msg
    try:
        from_uri = furi or msg.from_.uri_text
        ruri = msg.ruri
    except SipParseError:
        return -1
    rows = table.matches(src_ip, proto, from_uri, ruri, all_matches=_state.tag_mode == 1)
    if not rows:
        return -1
    if _state.tag_avp:
        for r in rows:
            if r.tag is not None:
                set_pv(ctx, _state.tag_avp, r.tag)
    return len(rows) if _state.tag_mode == 1 else 1


def allow_trusted(ctx: MsgContext) -> int:
    """allow_trusted_args with the request's source address, transport and From URI."""
    return allow_trusted_args(ctx, ctx.rcv.src_ip, ctx.rcv.proto, "")


# ---- RPC --------------------------------------------------------------------------------
def _rpc_address_dump(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    t = _loader().addresses.current()
    return [{"table": 0, "group": g, "item": {"ip": str(ip), "port": p,
                                              "tag": "NULL" if tag is None else tag}}
            for ip, entries in t.exact.items() for g, p, tag in entries]


def _rpc_subnet_dump(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    t = _loader().addresses.current()
    return [{"id": i, "group": g, "item": {"ip": str(net.network_address),
                                           "mask": net.prefixlen, "port": p, "tag": tag or ""}}
            for i, (net, g, p, tag) in enumerate(t.subnets)]


def _rpc_domain_dump(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    t = _loader().addresses.current()
    return [{"table": 0, "group": g, "item": {"domain_name": name, "port": p,
                                              "tag": "NULL" if tag is None else tag}}
            for name, entries in t.names.items() for g, p, tag in entries]


def _rpc_trusted_dump(core: Core, params: list[Any]) -> list[dict[str, Any]]:
    t = _loader().trusted.current()
    return [{"src_ip": r.src_ip, "proto": r.proto, "pattern": r.from_pattern or "",
             "ruri_pattern": r.ruri_pattern or "", "tag": r.tag or "", "priority": r.priority}
            for r in t.rows]

