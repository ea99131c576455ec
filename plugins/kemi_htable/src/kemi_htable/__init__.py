"""htable.so: named hash tables shared by every worker (Kamailio's htable module).

``modparam("htable", "htable", "ipban=>size=8;autoexpire=300;")`` declares a table; scripts
read and write it with ``$sht(ipban=>$si)`` and ``KSR.htable.sht_*``. A table may be loaded
from the database at start (``dbtable``, with ``db_url``) and written back at shutdown
(``dbmode=1``). The items live in the shared store (one LMDB table per hash table), so a
value one worker sets is what every other worker reads next.
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
    shared_store,
)
from kemi_htable import functions as f
from kemi_htable import rpc
from kemi_htable.dbsync import DbSettings, DbSync
from kemi_htable.pvs import register_pvs
from kemi_htable.registry import ITERATORS, TABLES
from kemi_htable.spec import TableSpec, parse_spec
from kemi_htable.table import HTable

log = logging.getLogger("kemi.htable")

MODULE = "htable"

_PARAMS: tuple[tuple[str, type, Any, str, bool], ...] = (
    ("htable", str, None, "a table: 'name=>size=N;autoexpire=S;dbtable=T;dbmode=1;initval=I;"
                          "updateexpire=0|1'", True),
    ("db_url", str, "", "database the dbtable tables are loaded from", False),
    ("key_name_column", str, "key_name", "", False),
    ("key_type_column", str, "key_type", "", False),
    ("value_type_column", str, "value_type", "", False),
    ("key_value_column", str, "key_value", "", False),
    ("expires_column", str, "expires", "", False),
    ("array_size_suffix", str, "::size", "suffix of the key counting an array's items", False),
    ("fetch_rows", int, 100, "accepted for compatibility (rows are read at once)", False),
    ("timer_interval", int, 20, "accepted for compatibility (the shared store expires items "
                                "as they are read)", False),
    ("db_expires", int, 0, "1: load and save the items' expiry times", False),
    ("enable_dmq", int, 0, "DMQ replication (not available: must stay 0)", False),
    ("timer_procs", int, 0, "accepted for compatibility", False),
    ("event_callback", str, "", "accepted for compatibility (no htable events yet)", False),
)

# (name, function, KEMI parameter letters): the KEMI exports, Kamailio 5.6's list.
_EXPORTS: tuple[tuple[str, Any, str], ...] = (
    ("sht_get", f.sht_get, "ss"), ("sht_gete", f.sht_gete, "ss"),
    ("sht_getw", f.sht_getw, "ss"), ("sht_is_null", f.sht_is_null, "ss"),
    ("sht_sets", f.sht_sets, "sss"), ("sht_seti", f.sht_seti, "ssi"),
    ("sht_setex", f.sht_setex, "ssi"), ("sht_setxs", f.sht_setxs, "sssi"),
    ("sht_setxi", f.sht_setxi, "ssii"), ("sht_inc", f.sht_inc, "ss"),
    ("sht_dec", f.sht_dec, "ss"), ("sht_rm", f.sht_rm, "ss"),
    ("sht_rm_name_re", f.sht_rm_name_re, "ss"), ("sht_rm_value_re", f.sht_rm_value_re, "ss"),
    ("sht_rm_name", f.sht_rm_name, "sss"), ("sht_rm_value", f.sht_rm_value, "sss"),
    ("sht_match_name", f.sht_match_name, "sss"),
    ("sht_match_str_value", f.sht_match_str_value, "sss"),
    ("sht_reset", f.sht_reset, "s"), ("sht_lock", f.sht_lock, "ss"),
    ("sht_unlock", f.sht_unlock, "ss"),
    ("sht_iterator_start", f.sht_iterator_start, "ss"),
    ("sht_iterator_next", f.sht_iterator_next, "s"),
    ("sht_iterator_end", f.sht_iterator_end, "s"),
    ("sht_iterator_rm", f.sht_iterator_rm, "s"),
    ("sht_iterator_sets", f.sht_iterator_sets, "ss"),
    ("sht_iterator_seti", f.sht_iterator_seti, "si"),
    ("sht_iterator_setex", f.sht_iterator_setex, "si"),
)


class _State:
    sync: DbSync | None = None


_state = _State()


def exports() -> list[KemiExport]:
    from kemi_core.api import ReturnKind

    xval = ("sht_get", "sht_gete", "sht_getw")
    return [export(MODULE, name, func, letters, ReturnKind.XVAL if name in xval else None)
            for name, func, letters in _EXPORTS]


def _x(ctx: MsgContext, text: str) -> str:
    return ctx.core.pv.format(text)(ctx) if "$" in text else text


def _split_ref(ctx: MsgContext, text: str) -> tuple[str, str]:
    """The native functions' ``table=>value`` argument."""
    name, _, rest = _x(ctx, text).partition("=>")
    return name, rest


def _cfg_functions() -> list[CfgFunction]:
    x = _x
    defs: list[tuple[str, Any, int, int, tuple[int, ...]]] = [
        ("sht_print", lambda ctx: f.sht_print(ctx), 0, 0, ()),
        ("sht_rm_name_re", lambda ctx, r: f.sht_rm_name_re(ctx, *_split_ref(ctx, r)), 1, 1, ()),
        ("sht_rm_value_re", lambda ctx, r: f.sht_rm_value_re(ctx, *_split_ref(ctx, r)), 1, 1, ()),
        ("sht_rm_name", lambda ctx, h, o, v: f.sht_rm_name(ctx, x(ctx, h), x(ctx, o), x(ctx, v)),
         3, 3, ()),
        ("sht_rm_value", lambda ctx, h, o, v: f.sht_rm_value(ctx, x(ctx, h), x(ctx, o),
                                                             x(ctx, v)), 3, 3, ()),
        ("sht_rm", lambda ctx, h, k: f.sht_rm(ctx, x(ctx, h), x(ctx, k)), 2, 2, ()),
        ("sht_reset", lambda ctx, h: 1 if f.sht_reset(ctx, x(ctx, h)) == 0 else -1, 1, 1, ()),
        ("sht_lock", lambda ctx, r: f.sht_lock(ctx, *_split_ref(ctx, r)), 1, 1, ()),
        ("sht_unlock", lambda ctx, r: f.sht_unlock(ctx, *_split_ref(ctx, r)), 1, 1, ()),
        ("sht_match_name", lambda ctx, h, o, v: f.sht_match_name(ctx, x(ctx, h), x(ctx, o),
                                                                 x(ctx, v)), 3, 3, ()),
        ("sht_match_str_value", lambda ctx, h, o, v: f.sht_match_str_value(
            ctx, x(ctx, h), x(ctx, o), x(ctx, v)), 3, 3, ()),
        ("sht_setxs", lambda ctx, h, k, v, e: 1 if f.sht_setxs(
            ctx, x(ctx, h), x(ctx, k), x(ctx, v), e) >= 0 else -1, 4, 4, (3,)),
        ("sht_setxi", lambda ctx, h, k, v, e: 1 if f.sht_setxi(
            ctx, x(ctx, h), x(ctx, k), v, e) >= 0 else -1, 4, 4, (2, 3)),
        ("sht_iterator_start", lambda ctx, i, h: f.sht_iterator_start(ctx, x(ctx, i), x(ctx, h)),
         2, 2, ()),
        ("sht_iterator_next", lambda ctx, i: f.sht_iterator_next(ctx, x(ctx, i)), 1, 1, ()),
        ("sht_iterator_end", lambda ctx, i: f.sht_iterator_end(ctx, x(ctx, i)), 1, 1, ()),
        ("sht_iterator_rm", lambda ctx, i: f.sht_iterator_rm(ctx, x(ctx, i)), 1, 1, ()),
        ("sht_iterator_sets", lambda ctx, i, v: f.sht_iterator_sets(ctx, x(ctx, i), x(ctx, v)),
         2, 2, ()),
        ("sht_iterator_seti", lambda ctx, i, v: f.sht_iterator_seti(ctx, x(ctx, i), v),
         2, 2, (1,)),
        ("sht_iterator_setex", lambda ctx, i, v: f.sht_iterator_setex(ctx, x(ctx, i), v),
         2, 2, (1,)),
    ]
    return [CfgFunction(MODULE, n, fn, lo, hi, ints) for n, fn, lo, hi, ints in defs]


@hookimpl
def mod_register(core: Core) -> None:
    for name, kind, default, doc, multi in _PARAMS:
        core.declare_param(MODULE, name, kind, default, multi=multi, doc=doc)
    for fn in _cfg_functions():
        core.add_cfg_function(fn)
    rpc.register(core, lambda: _state.sync)
    register_pvs(core)


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return exports()


@hookimpl
def mod_init(core: Core) -> None:
    if int(core.modparam(MODULE, "enable_dmq")):
        raise ModuleError("htable: DMQ replication is not available (enable_dmq must be 0)")
    specs: list[TableSpec] = [parse_spec(text) for text in core.modparam(MODULE, "htable")]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ModuleError(f"htable: a table is declared twice in {names}")
    store = shared_store(core)
    TABLES.clear()
    ITERATORS.clear()
    for spec in specs:
        TABLES[spec.name] = HTable(spec, store)
    settings = DbSettings.from_core(core)
    needs_db = [s for s in specs if s.dbtable]
    _state.sync = DbSync(core, settings) if settings.url else None
    if needs_db and _state.sync is None:
        raise ModuleError(f"htable: table {needs_db[0].name} has a dbtable but no db_url is set")
    for spec in needs_db:
        try:
            n = _state.sync.load(TABLES[spec.name]) if _state.sync else 0
        except DbError as exc:
            raise ModuleError(f"htable: cannot load table {spec.name} from "
                              f"{spec.dbtable}: {exc}")
        log.info("htable %s: %d items loaded from %s", spec.name, n, spec.dbtable)


@hookimpl
def mod_destroy(core: Core) -> None:
    sync = _state.sync
    if sync is None:
        return
    for t in TABLES.values():
        if t.spec.dbtable and t.spec.dbmode == 1:
            try:
                n = sync.save(t)
                log.info("htable %s: %d items saved to %s", t.name, n, t.spec.dbtable)
            except (DbError, ValueError) as exc:
                log.error("htable %s: not saved to %s: %s", t.name, t.spec.dbtable, exc)
