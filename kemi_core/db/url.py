"""Kamailio's ``db_url``: ``scheme://[user[:password]@]host[:port]/database``.

SQLite takes everything after ``sqlite://`` as the file path (``sqlite:///var/lib/kamailio/
kamailio.db`` is the absolute path ``/var/lib/kamailio/kamailio.db``, as Kamailio's docs write
it; Kamailio itself reads it relative to its working directory, which is ``/`` once it
daemonizes, so ``sqlite:////var/lib/...`` is also seen in Kamailio configs: it means the same). ``postgresql://`` is
accepted as another spelling of ``postgres://``. As in Kamailio, no percent-decoding is done.
"""

from __future__ import annotations

import attrs

from kemi_core.errors import ConfigError

#: Scheme spellings that name the same backend.
SCHEME_ALIASES = {"postgresql": "postgres", "sqlite3": "sqlite"}


@attrs.frozen
class DbUrl:
    """A parsed ``db_url``; ``str()`` gives it back with the password hidden (for logs)."""

    raw: str = attrs.field(repr=False)
    scheme: str  # canonical: "sqlite", "postgres", ...
    user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str = ""  # the database name, or the file path for sqlite

    def __str__(self) -> str:
        if self.scheme == "sqlite":
            return f"sqlite://{self.database}"
        auth = ""
        if self.user is not None:
            auth = self.user + (":***" if self.password is not None else "") + "@"
        host = self.host or ""
        if host and ":" in host:
            host = f"[{host}]"
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{auth}{host}{port}/{self.database}"


def parse_db_url(raw: str) -> DbUrl:
    """Parse a ``db_url``; a malformed one raises :class:`ConfigError` naming what is wrong."""
    text = raw.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme:
        raise ConfigError(f"db_url {text!r} has no scheme (expected e.g. sqlite:///path/file.db "
                          "or postgres://user:pass@host:port/db)")
    scheme = scheme.lower()
    scheme = SCHEME_ALIASES.get(scheme, scheme)
    if scheme == "sqlite":
        if not rest:
            raise ConfigError(f"db_url {text!r} names no database file")
        path = "/" + rest.lstrip("/") if rest.startswith("//") else rest
        return DbUrl(raw=text, scheme=scheme, database=path)
    authority, slash, database = rest.rpartition("/")
    if not slash:
        authority, database = rest, ""
    if not database:
        raise ConfigError(f"db_url {_redacted(text)!r} names no database (…/dbname)")
    userinfo, at, hostport = authority.rpartition("@")
    user = password = None
    if at:
        user, colon, pw = userinfo.partition(":")
        password = pw if colon else None
    host, port = _split_hostport(hostport, text)
    return DbUrl(raw=text, scheme=scheme, user=user or None, password=password,
                 host=host or None, port=port, database=database)


def _split_hostport(hostport: str, text: str) -> tuple[str, int | None]:
    if hostport.startswith("["):  # [IPv6]:port
        end = hostport.find("]")
        if end < 0:
            raise ConfigError(f"db_url {_redacted(text)!r}: unclosed '[' in the host")
        host, tail = hostport[1:end], hostport[end + 1:]
        port_text = tail[1:] if tail.startswith(":") else ""
        if tail and not tail.startswith(":"):
            raise ConfigError(f"db_url {_redacted(text)!r}: junk after the host")
    else:
        host, _, port_text = hostport.partition(":")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"db_url {_redacted(text)!r}: bad port {port_text!r}")
    return host, int(port_text)


def _redacted(text: str) -> str:
    """The URL text with any password replaced, for error messages about unparsable URLs."""
    scheme, sep, rest = text.partition("://")
    userinfo, at, tail = rest.rpartition("@")
    if at and ":" in userinfo:
        return f"{scheme}{sep}{userinfo.partition(':')[0]}:***@{tail}"
    return text
