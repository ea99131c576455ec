"""db_url parsing: Kamailio's forms, the password kept out of logs, clear errors."""

from __future__ import annotations

import pytest

from kemi_core.db import parse_db_url
from kemi_core.errors import ConfigError


def test_sqlite_absolute_and_relative_paths() -> None:
    assert parse_db_url("sqlite:///var/lib/kamailio/k.db").database == "/var/lib/kamailio/k.db"
    assert parse_db_url("sqlite://k.db").database == "k.db"
    # Kamailio reads sqlite:///x relative to its working directory: configs for a Kamailio not
    # running from / write four slashes for an absolute path
    assert parse_db_url("sqlite:////var/lib/k.db").database == "/var/lib/k.db"
    assert str(parse_db_url("sqlite:///tmp/x.db")) == "sqlite:///tmp/x.db"


def test_postgres_full_url_and_alias() -> None:
    url = parse_db_url("postgresql://kamailio:s3cr:et@db.example.com:5433/kamailio")
    assert (url.scheme, url.user, url.password, url.host, url.port, url.database) == (
        "postgres", "kamailio", "s3cr:et", "db.example.com", 5433, "kamailio")
    assert "s3cr" not in str(url) and "s3cr" not in repr(url)
    assert str(url) == "postgres://kamailio:***@db.example.com:5433/kamailio"


def test_postgres_without_port_or_credentials_and_ipv6() -> None:
    url = parse_db_url("postgres://127.0.0.1/kam")
    assert (url.user, url.password, url.host, url.port) == (None, None, "127.0.0.1", None)
    url = parse_db_url("postgres://u@[::1]:5432/kam")
    assert (url.user, url.host, url.port) == ("u", "::1", 5432)
    assert str(url) == "postgres://u@[::1]:5432/kam"


@pytest.mark.parametrize("text, reason", [
    ("/var/lib/k.db", "no scheme"),
    ("sqlite://", "no database file"),
    ("postgres://u:pw@host:5432/", "names no database"),
    ("postgres://u:pw@host:99999/db", "bad port"),
    ("postgres://u:pw@host:x/db", "bad port"),
])
def test_malformed_urls_are_config_errors(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as info:
        parse_db_url(text)
    assert "pw" not in str(info.value)
