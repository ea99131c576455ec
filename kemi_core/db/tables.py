"""Kamailio 5.6's table layouts for the modules kemi provides, with their versions.

Our own definitions of the layouts Kamailio documents (one :class:`Table` each), grouped by the
module that uses them, as ``kamdbctl create`` groups them: a database made by Kamailio's
schema works with kemi and one made by ``kemi db init`` works with Kamailio.
"""

from __future__ import annotations

from kemi_core.db.schema import (
    NO_DEFAULT,
    Column,
    ColumnType,
    Index,
    Table,
    datetime_col,
    id_column,
    integer,
    string,
)

#: Kamailio's "far future" default for expires columns, and its "never modified" timestamp.
FAR_FUTURE = "2030-05-28 21:32:15"
NEVER = "2000-01-01 00:00:01"
EPOCH_2000 = "2000-01-01 00:00:00"

VERSION = Table("version", 1, (
    id_column(),
    Column("table_name", ColumnType.STRING, 32),
    integer("table_version"),
), (Index("version_table_name_idx", ("table_name",), unique=True),))


def _contact_columns(contact_size: int, received_size: int) -> tuple[Column, ...]:
    """What location and registrar's aliases table share: one registered contact per row."""
    return (
        id_column(),
        string("ruid", 64),
        string("username", 64),
        string("domain", 64, default=None),
        string("contact", contact_size),
        string("received", received_size, default=None),
        string("path", 512, default=None),
        datetime_col("expires", FAR_FUTURE),
        Column("q", ColumnType.FLOAT, default=1.0),
        string("callid", 255, "Default-Call-ID"),
        integer("cseq", 1),
        datetime_col("last_modified", NEVER),
        integer("flags"),
        integer("cflags"),
        string("user_agent", 255),
        string("socket", 64, default=None),
        integer("methods", None),
        string("instance", 255, default=None),
        integer("reg_id"),
        integer("server_id"),
        integer("connection_id"),
        integer("keepalive"),
        integer("partition"),
    )


# ---- usrloc / registrar ----------------------------------------------------------------------
LOCATION = Table("location", 9, _contact_columns(512, 128), (
    Index("location_ruid_idx", ("ruid",), unique=True),
    Index("location_account_contact_idx", ("username", "domain", "contact")),
    Index("location_expires_idx", ("expires",)),
    Index("location_tcpcon_idx", ("connection_id",)),
    Index("location_connection_idx", ("server_id", "connection_id")),
))

LOCATION_ATTRS = Table("location_attrs", 1, (
    id_column(),
    string("ruid", 64),
    string("username", 64),
    string("domain", 64, default=None),
    string("aname", 64),
    integer("atype"),
    string("avalue", 512),
    datetime_col("last_modified", NEVER),
), (
    Index("location_attrs_account_record_idx", ("username", "domain", "ruid")),
    Index("location_attrs_last_modified_idx", ("last_modified",)),
))

ALIASES = Table("aliases", 8, _contact_columns(255, 255), (
    Index("aliases_ruid_idx", ("ruid",), unique=True),
    Index("aliases_account_contact_idx", ("username", "domain", "contact")),
    Index("aliases_expires_idx", ("expires",)),
))

# ---- auth_db ---------------------------------------------------------------------------------
SUBSCRIBER = Table("subscriber", 7, (
    id_column(),
    string("username", 64),
    string("domain", 64),
    string("password", 64),
    string("ha1", 128),
    string("ha1b", 128),
), (
    Index("subscriber_account_idx", ("username", "domain"), unique=True),
    Index("subscriber_username_idx", ("username",)),
))

# ---- permissions -----------------------------------------------------------------------------
TRUSTED = Table("trusted", 6, (
    id_column(),
    string("src_ip", 50, default=NO_DEFAULT),
    string("proto", 4, default=NO_DEFAULT),
    string("from_pattern", 64, default=None),
    string("ruri_pattern", 64, default=None),
    Column("tag", ColumnType.STRING, 64, nullable=True),
    integer("priority"),
), (Index("trusted_peer_idx", ("src_ip",)),))

ADDRESS = Table("address", 6, (
    id_column(),
    integer("grp", 1),
    string("ip_addr", 50, default=NO_DEFAULT),
    integer("mask", 32),
    Column("port", ColumnType.SMALLINT, default=0),
    Column("tag", ColumnType.STRING, 64, nullable=True),
))


# ---- acc -------------------------------------------------------------------------------------
def _acc_columns() -> tuple[Column, ...]:
    return (
        id_column(),
        string("method", 16),
        string("from_tag", 128),
        string("to_tag", 128),
        string("callid", 255),
        string("sip_code", 3),
        string("sip_reason", 128),
        datetime_col("time"),
    )


ACC = Table("acc", 5, _acc_columns(), (Index("acc_callid_idx", ("callid",)),))
MISSED_CALLS = Table("missed_calls", 4, _acc_columns(),
                     (Index("missed_calls_callid_idx", ("callid",)),))
ACC_CDRS = Table("acc_cdrs", 2, (
    id_column(),
    datetime_col("start_time", EPOCH_2000),
    datetime_col("end_time", EPOCH_2000),
    Column("duration", ColumnType.FLOAT, default=0),
), (Index("acc_cdrs_start_time_idx", ("start_time",)),))

# ---- htable ----------------------------------------------------------------------------------
HTABLE = Table("htable", 2, (
    id_column(),
    string("key_name", 64),
    integer("key_type"),
    integer("value_type"),
    string("key_value", 128),
    integer("expires"),
))

# ---- dispatcher ------------------------------------------------------------------------------
DISPATCHER = Table("dispatcher", 4, (
    id_column(),
    integer("setid"),
    string("destination", 192),
    integer("flags"),
    integer("priority"),
    string("attrs", 128),
    string("description", 64),
))

# ---- domain ----------------------------------------------------------------------------------
DOMAIN = Table("domain", 2, (
    id_column(),
    string("domain", 64, default=NO_DEFAULT),
    string("did", 64, default=None),
    datetime_col("last_modified", NEVER),
), (Index("domain_domain_idx", ("domain",), unique=True),))

DOMAIN_ATTRS = Table("domain_attrs", 1, (
    id_column(),
    string("did", 64, default=NO_DEFAULT),
    string("name", 32, default=NO_DEFAULT),
    Column("type", ColumnType.INT),
    string("value", 255, default=NO_DEFAULT),
    datetime_col("last_modified", NEVER),
), (Index("domain_attrs_domain_attrs_idx", ("did", "name")),))

#: Tables by the Kamailio module that uses them (``kamdbctl create``'s groups); "standard" is
#: the version table every database has.
MODULE_TABLES: dict[str, tuple[Table, ...]] = {
    "standard": (VERSION,),
    "usrloc": (LOCATION, LOCATION_ATTRS),
    "registrar": (ALIASES,),
    "auth_db": (SUBSCRIBER,),
    "permissions": (TRUSTED, ADDRESS),
    "acc": (ACC, ACC_CDRS, MISSED_CALLS),
    "htable": (HTABLE,),
    "dispatcher": (DISPATCHER,),
    "domain": (DOMAIN, DOMAIN_ATTRS),
}

#: Every layout by its default table name.
KNOWN_TABLES: dict[str, Table] = {t.name: t for group in MODULE_TABLES.values() for t in group}

#: The columns Kamailio's official example asks to add to acc and missed_calls for its
#: ``WITH_ACCDB`` (its ``db_extra``: caller, callee and source address of each call).
ACC_EXAMPLE_EXTRA = (
    string("src_user", 64), string("src_domain", 128), string("src_ip", 64),
    string("dst_ouser", 64), string("dst_user", 64), string("dst_domain", 128),
)

#: Groups beyond Kamailio's schema files, named on request only (never part of "all").
OPTIONAL_TABLES: dict[str, tuple[Table, ...]] = {
    "acc_extra": (ACC.with_columns(ACC_EXAMPLE_EXTRA),
                  MISSED_CALLS.with_columns(ACC_EXAMPLE_EXTRA)),
}


def tables_for(modules: list[str] | None = None) -> list[Table]:
    """The tables of ``modules`` (Kamailio's groups when empty), ``version`` first, each name
    once: a later group's layout replaces an earlier one of the same name (``acc acc_extra``)."""
    groups = {**MODULE_TABLES, **OPTIONAL_TABLES}
    names = list(modules or MODULE_TABLES)
    unknown = [m for m in names if m not in groups]
    if unknown:
        known = ", ".join(sorted(groups))
        raise KeyError(f"no tables known for module(s) {', '.join(unknown)} (known: {known})")
    out: dict[str, Table] = {VERSION.name: VERSION}
    for name in names:
        for table in groups[name]:
            out[table.name] = table
    return list(out.values())
