"""Hash table definitions: ``modparam("htable", "htable", "name=>size=8;autoexpire=300;...")``."""

from __future__ import annotations

import re

import attrs

from kemi_core.api import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,48}$")
_INT_ATTRS = ("size", "autoexpire", "dbmode", "updateexpire", "dmqreplicate", "initval",
              "coldelim", "colnull")


@attrs.frozen
class TableSpec:
    """One table: Kamailio's attributes (size only sets the reported slot count here)."""

    name: str
    size: int = 4
    autoexpire: int = 0
    dbtable: str = ""
    dbmode: int = 0
    initval: int | None = None
    updateexpire: bool = True
    dmqreplicate: int = 0
    #: columns of dbtable (cols='key,value1,value2'): key first, the values packed with ','
    cols: tuple[str, ...] = ()

    @property
    def slots(self) -> int:
        return 2 ** self.size


def parse_spec(text: str) -> TableSpec:
    """A table definition; ConfigError names what is wrong."""
    name, arrow, attrs_text = text.partition("=>")
    name = name.strip()
    if not arrow or not _NAME.match(name):
        raise ConfigError(f"htable: bad table definition {text!r} (name=>size=...;...)")
    ints: dict[str, int] = {}
    dbtable = ""
    cols: tuple[str, ...] = ()
    for item in attrs_text.split(";"):
        item = item.strip()
        if not item:
            continue
        key, eq, val = item.partition("=")
        key, val = key.strip().lower(), val.strip()
        if not eq:
            raise ConfigError(f"htable: attribute {item!r} of table {name} has no value")
        if key in _INT_ATTRS:
            try:
                ints[key] = int(val)
            except ValueError:
                raise ConfigError(f"htable: {key} of table {name} must be an integer, "
                                  f"not {val!r}")
        elif key == "dbtable":
            dbtable = val
        elif key == "cols":
            cols = tuple(c.strip() for c in val.strip("'\"").split(",") if c.strip())
            if len(cols) < 2:
                raise ConfigError(f"htable: cols of table {name} needs a key and a value column")
        else:
            raise ConfigError(f"htable: unknown attribute {key!r} of table {name}")
    size = ints.get("size", 4)
    size = 3 if size < 2 else 14 if size > 31 else size  # Kamailio's clamp
    return TableSpec(name=name, size=size, autoexpire=max(0, ints.get("autoexpire", 0)),
                     dbtable=dbtable, dbmode=ints.get("dbmode", 0), initval=ints.get("initval"),
                     updateexpire=bool(ints.get("updateexpire", 1)),
                     dmqreplicate=ints.get("dmqreplicate", 0), cols=cols)
