"""The SQL builder and the DDL: placeholders for every value, checked identifiers, Kamailio's
type names and constraints."""

from __future__ import annotations

import pytest

from kemi_core.db import sql, tables
from kemi_core.db.ddl import create_table_sql, schema_script


def test_values_never_enter_the_sql_text() -> None:
    evil = "x'; DROP TABLE location; --"
    text, params = sql.select("?", "location", ("contact",), {"username": evil, "domain": None})
    assert evil not in text
    assert text == ('SELECT "contact" FROM "location" WHERE "username" = ? AND "domain" IS NULL')
    assert params == [evil]
    text, params = sql.update("%s", "location", ("expires",), [("ruid", "=", evil)])
    assert text == 'UPDATE "location" SET "expires" = %s WHERE "ruid" = %s' and params == [evil]


def test_operators_order_and_limit() -> None:
    text, params = sql.select("?", "location", ("ruid",),
                              [("expires", "<", 10), ("expires", "!=", 0), ("path", "!=", None)],
                              order_by=("-q", "id"), limit=5)
    assert text == ('SELECT "ruid" FROM "location" WHERE "expires" < ? AND "expires" != ? '
                    'AND "path" IS NOT NULL ORDER BY "q" DESC, "id" LIMIT ?')
    assert params == [10, 0, 5]


def test_statements_are_cached_by_shape() -> None:
    a, _ = sql.delete("?", "acc", {"callid": "one"})
    b, _ = sql.delete("?", "acc", {"callid": "two"})
    c, _ = sql.delete("?", "acc", {"callid": None})
    assert a is b and c != a


@pytest.mark.parametrize("table, col", [("loc ation", "x"), ("location", 'x"; --'),
                                        ("location", "1abc"), ("t;", "x")])
def test_bad_identifiers_are_refused(table: str, col: str) -> None:
    with pytest.raises(ValueError, match="invalid SQL"):
        sql.select("?", table, (col,), None)


def test_bad_operator_and_null_comparison_are_refused() -> None:
    with pytest.raises(ValueError, match="operator"):
        sql.select("?", "acc", ("id",), [("id", "LIKE", "x")])
    with pytest.raises(ValueError, match="NULL"):
        sql.select("?", "acc", ("id",), [("id", "<", None)])


def test_upsert_needs_its_key_among_the_values() -> None:
    text = sql.upsert("?", "location", ("ruid", "contact"), ("ruid",))
    assert text.endswith('ON CONFLICT ("ruid") DO UPDATE SET "contact" = excluded."contact"')
    with pytest.raises(ValueError, match="key columns"):
        sql.upsert("?", "location", ("contact",), ("ruid",))


def test_ddl_spells_types_as_kamailio_and_declares_unique_constraints() -> None:
    sqlite = create_table_sql(tables.LOCATION, "sqlite")
    pg = create_table_sql(tables.LOCATION, "postgres")
    assert '"id" INTEGER PRIMARY KEY NOT NULL' in sqlite[0]
    assert '"id" SERIAL PRIMARY KEY NOT NULL' in pg[0]
    for text in (sqlite[0], pg[0]):
        assert '"expires" TIMESTAMP WITHOUT TIME ZONE DEFAULT \'2030-05-28 21:32:15\' NOT NULL' in text
        assert '"domain" VARCHAR(64) DEFAULT NULL,' in text
        assert '"methods" INTEGER DEFAULT NULL,' in text
        assert 'CONSTRAINT "location_ruid_idx" UNIQUE ("ruid")' in text
    assert len(sqlite) == 5 and all("CREATE INDEX IF NOT EXISTS" in s for s in sqlite[1:])
    trusted = create_table_sql(tables.TRUSTED, "sqlite")[0]
    assert '"src_ip" VARCHAR(50) NOT NULL' in trusted and '"tag" VARCHAR(64),' in trusted


def test_schema_script_covers_every_table_once() -> None:
    script = schema_script(tables.tables_for(), "postgres")
    for name in tables.KNOWN_TABLES:
        assert script.count(f'CREATE TABLE IF NOT EXISTS "{name}" ') == 1
    with pytest.raises(KeyError, match="no tables known"):
        tables.tables_for(["nosuch"])
