"""The subscriber table: a user's HA1 for a Digest response, and the columns to load as AVPs.

Kamailio's rules for where the HA1 comes from:

- ``calculate_ha1`` = 1: the ``password_column`` holds the plain password and the HA1 is
  computed as H(username ":" realm ":" password), with the username as the client sent it;
- ``calculate_ha1`` = 0: the column holds the HA1 itself: ``password_column`` (``ha1``) for a
  username without a domain, ``password_column_2`` (``ha1b``, computed over ``user@domain``)
  for one with.

The user is looked up by the user part of the credentials' username (and, with ``use_domain``,
the domain: the username's domain part, else the realm). Values are always bound parameters:
a username like ``alice' OR '1'='1`` is looked up as exactly that text.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import attrs

from kemi_auth import AuthResult, Credentials
from kemi_auth.digest import ALGORITHMS
from kemi_auth.verify import HA1Lookup
from kemi_core.api import ConfigError, Database, DbError, MsgContext, set_pv
from kemi_core.sip import digest_ha1  # (None when kemi_core.sip._fast is not built)

if TYPE_CHECKING:
    from kemi_core.api import Core

log = logging.getLogger("kemi.auth_db")

MODULE = "auth_db"
_AVP_SPEC = re.compile(r"^\$avp\((?:[si]:)?([A-Za-z0-9_.\-]+)\)$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@attrs.frozen
class SubscriberSettings:
    user_column: str = "username"
    domain_column: str = "domain"
    password_column: str = "ha1"
    password_column_2: str = "ha1b"
    calculate_ha1: bool = False
    use_domain: bool = False
    #: (AVP name, column) pairs of load_credentials
    credentials: tuple[tuple[str, str], ...] = ()
    version_table: bool = True
    force_generate_avps: bool = False

    @classmethod
    def from_core(cls, core: Core) -> SubscriberSettings:
        def p(name: str) -> Any:
            return core.modparam(MODULE, name)

        return cls(
            user_column=p("user_column"), domain_column=p("domain_column"),
            password_column=p("password_column"), password_column_2=p("password_column_2"),
            calculate_ha1=bool(p("calculate_ha1")), use_domain=bool(p("use_domain")),
            credentials=parse_load_credentials(p("load_credentials")),
            version_table=bool(p("version_table")),
            force_generate_avps=bool(p("force_generate_avps")))


def parse_load_credentials(text: str) -> tuple[tuple[str, str], ...]:
    """``$avp(i:123)=rpid;email_address`` -> (("123", "rpid"), ("email_address", ...))."""
    out = []
    for item in (t.strip() for t in text.split(";")):
        if not item:
            continue
        avp, eq, column = item.partition("=")
        if not eq:
            avp, column = item, item
        else:
            m = _AVP_SPEC.match(avp.strip())
            if m is None:
                raise ConfigError(f"auth_db: load_credentials: {avp.strip()!r} is not an AVP "
                                  "($avp(name))")
            avp = m.group(1)
        out.append((avp.strip(), column.strip()))
    return tuple(out)


class Subscribers:
    """Lookups in the subscriber table (one per process; the DB layer connects lazily)."""

    def __init__(self, db: Database, settings: SubscriberSettings) -> None:
        self.db = db
        self.s = settings
        self._checked: set[str] = set()
        #: (table, use_domain) -> (SQL text, columns): one statement per shape, values bound
        self._statements: dict[tuple[str, bool], tuple[str, list[str]]] = {}
        #: table -> what _lookup_of gives, for tables whose version was checked
        self._lookups: dict[str, tuple[str, list[str], int]] = {}
        #: table -> its HA1 lookup keeping no row (no load_credentials): made once
        self.plain_lookups: dict[str, HA1Lookup] = {}

    def _statement(self, table: str, use_domain: bool) -> tuple[str, list[str]]:
        key = (table, use_domain)
        found = self._statements.get(key)
        if found is None:
            s = self.s
            columns = [s.password_column]
            if not s.calculate_ha1 and s.password_column_2 not in columns:
                columns.append(s.password_column_2)
            columns += [c for _, c in s.credentials if c not in columns]
            names = [table, s.user_column, s.domain_column, *columns]
            bad = [n for n in names if not _IDENT.match(n)]
            if bad:  # names come from the script and modparams, never from SIP
                raise ValueError(f"invalid SQL name {bad[0]!r}: letters, digits and _ only")
            ph = self.db.placeholder
            where = f'"{s.user_column}" = {ph}'
            if use_domain:
                where += f' AND "{s.domain_column}" = {ph}'
            selected = ", ".join(f'"{c}"' for c in columns)
            text = f'SELECT {selected} FROM "{table}" WHERE {where} LIMIT 1'
            found = self._statements[key] = (text, columns)
        return found

    def _ready(self, table: str) -> bool:
        """Kamailio's table version check, once per table and process."""
        if not self.s.version_table or table in self._checked:
            return True
        try:
            self.db.check_version(table, 7, user=MODULE)
        except DbError as exc:
            log.error("%s", exc)
            return False
        self._checked.add(table)
        return True

    def fetch(self, table: str, user: str, domain: str,
              use_domain: bool | None = None) -> list[dict[str, Any]] | None:
        """The rows for ``user`` (and ``domain`` with use_domain); None on a database error."""
        if not self._ready(table):
            return None
        with_domain = self.s.use_domain if use_domain is None else use_domain
        try:
            text, columns = self._statement(table, with_domain)
            rows = self.db.raw_query(text, (user, domain) if with_domain else (user,))
        except ValueError as exc:  # a table or column name SQL cannot hold
            log.error("auth_db: %s", exc)
            return None
        except DbError:  # the database layer has logged it
            return None
        return [dict(zip(columns, row, strict=False)) for row in rows]

    def _lookup_of(self, table: str) -> tuple[str, list[str], int] | None:
        """(SQL text, columns, index of password_column_2's value) of the HA1 lookup in
        ``table``, made once the table's version is checked; None (not kept) on an error."""
        if not self._ready(table):
            return None
        try:
            text, columns = self._statement(table, self.s.use_domain)
        except ValueError as exc:  # a table or column name SQL cannot hold
            log.error("auth_db: %s", exc)
            return None
        found = self._lookups[table] = (text, columns, columns.index(self.s.password_column_2)
                                        if self.s.password_column_2 in columns else 0)
        return found

    def plain_lookup(self, table: str) -> HA1Lookup:
        """The HA1 lookup of ``table`` that keeps no row, made once."""
        lookup = self.plain_lookups[table] = self.ha1_lookup(table, None)
        return lookup

    def ha1_lookup(self, table: str, found: list[dict[str, Any]] | None) -> HA1Lookup:
        """The HA1 lookup auth's ``authenticate`` calls; keeps the row in ``found`` (as a dict
        by column when load_credentials wants columns of it) unless that is None."""

        def lookup(cred: Credentials, algorithm: str) -> str | int:
            entry = self._lookups.get(table) or self._lookup_of(table)
            if entry is None:
                return AuthResult.ERROR
            text, columns, second = entry
            username = cred.username
            user, at, domain = username.partition("@")
            try:  # (read_rows: raw_query's rules, the usual call in fewer layers)
                rows = self.db.read_rows(text, (user, domain if at else cred.realm)
                                         if self.s.use_domain else (user,))
            except DbError:  # the database layer has logged it
                return AuthResult.ERROR
            except ValueError as exc:  # e.g. a value the driver cannot bind
                log.error("auth_db: %s", exc)
                return AuthResult.ERROR
            if not rows:
                return AuthResult.USER_UNKNOWN
            row = rows[0]
            if found is not None:
                found.append(dict(zip(columns, row, strict=False)) if self.s.credentials else {})
            if self.s.calculate_ha1:  # digest.ha1 in place (compiled when built)
                if digest_ha1 is not None:
                    return digest_ha1(ALGORITHMS[algorithm], username, cred.realm,  # type: ignore[no-any-return]
                                      f"{row[0] or ''}")
                text = f"{username}:{cred.realm}:{row[0] or ''}"
                return ALGORITHMS[algorithm](text.encode("utf-8", "surrogateescape")).hexdigest()
            value = row[second] if at else row[0]
            return str(value) if value else AuthResult.ERROR

        return lookup

    def load_avps(self, ctx: MsgContext, row: dict[str, Any]) -> None:
        for avp, column in self.s.credentials:
            value = row.get(column)
            if value is not None:
                set_pv(ctx, f"$avp({avp})", value if isinstance(value, int) else str(value))
