"""loadmodule and modparam statements."""

from __future__ import annotations

import textwrap

import pytest

from kemi_core.config import parse_config_text
from kemi_core.config.model import CoreConfig, LoadModule, ModParam
from kemi_core.errors import ConfigError


def P(text: str, **kw: object) -> CoreConfig:
    return parse_config_text(textwrap.dedent(text).lstrip("\n"), source="t.cfg", **kw)  # type: ignore[arg-type]


def test_loadmodule_forms() -> None:
    cfg = P("""
        loadmodule "sl.so"
        loadmodule "modules/tm.so"
        loadmodule "/usr/lib/x86_64-linux-gnu/kamailio/modules/db_mysql.so"
        loadmodule "maxfwd"
        loadmodule 'xlog.so'
        loadmodulex "pv.so"
        loadmodule("rr.so")
    """)
    assert cfg.loadmodules == [
        LoadModule("t.cfg", 1, "sl", "sl.so"),
        LoadModule("t.cfg", 2, "tm", "modules/tm.so"),
        LoadModule("t.cfg", 3, "db_mysql", "/usr/lib/x86_64-linux-gnu/kamailio/modules/db_mysql.so"),
        LoadModule("t.cfg", 4, "maxfwd", "maxfwd"),
        LoadModule("t.cfg", 5, "xlog", "xlog.so"),
        LoadModule("t.cfg", 6, "pv", "pv.so"),
        LoadModule("t.cfg", 7, "rr", "rr.so"),
    ]


def test_modparam_values() -> None:
    cfg = P("""
        #!define FLT_ACC 1
        #!define DBURL "mysql://k:pw@localhost/k"
        modparam("tm", "fr_timer", 30000)
        modparam("tm", "neg", -1)
        modparam("tm", "hex", 0x10)
        modparam("auth_db", "calculate_ha1", yes)
        modparam("acc", "log_flag", FLT_ACC)
        modparam("acc", "db_url", DBURL)
        modparam("acc", "log_extra",
            "src_user=$fU;src_domain=$fd;"
            "dst_user=$rU")
        modparamx("htable", "htable", 'a=>size=4;')
        modparam("nathelper|registrar", "received_avp", "$avp(RECEIVED)")
        modparam ( "sl" , "bind_tm" , 1 )
    """)
    assert cfg.modparams == [
        ModParam("t.cfg", 3, "tm", "fr_timer", 30000),
        ModParam("t.cfg", 4, "tm", "neg", -1),
        ModParam("t.cfg", 5, "tm", "hex", 16),
        ModParam("t.cfg", 6, "auth_db", "calculate_ha1", 1),
        ModParam("t.cfg", 7, "acc", "log_flag", 1),
        ModParam("t.cfg", 8, "acc", "db_url", "mysql://k:pw@localhost/k"),
        ModParam("t.cfg", 9, "acc", "log_extra", "src_user=$fU;src_domain=$fd;dst_user=$rU"),
        ModParam("t.cfg", 12, "htable", "htable", "a=>size=4;"),
        ModParam("t.cfg", 13, "nathelper|registrar", "received_avp", "$avp(RECEIVED)"),
        ModParam("t.cfg", 14, "sl", "bind_tm", 1),
    ]


def test_string_escapes_in_values() -> None:
    cfg = P(r"""
        modparam("m", "a", "tab\there \"q\" back\\slash")
        modparam("m", "re", "^\d+$")
    """)
    assert cfg.modparams[0].value == 'tab\there "q" back\\slash'
    assert cfg.modparams[1].value == "^\\d+$"  # an unknown escape is kept as written


@pytest.mark.parametrize("text, reason", [
    ('modparam("acc", "log_flag", FLT_UNDEFINED)', "undefined name"),
    ('modparam("acc", "log_flag", 1', "missing ')'"),
    ('modparam("acc", "log_flag")', "expected ','"),
    ('modparam(acc, "log_flag", 1)', "module name as a quoted string"),
    ('modparam "acc"', "expected '(' after modparam"),
    ('modparam("acc", "x", )', "missing value"),
    ("loadmodule tm", "quoted module name"),
    ('loadmodule ""', "quoted module name"),
])
def test_module_statement_errors(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as ei:
        P(f'loadmodule "acc.so"\n{text}\n')
    assert (ei.value.file, ei.value.line) == ("t.cfg", 2)
    assert reason in ei.value.reason


def test_modparam_module_regex_sets_every_matching_module() -> None:
    """modparam("nathelper|registrar", ...): the name is a regular expression over the loaded
    modules (Kamailio's rule); each matching module that has the parameter gets it."""
    from kemi_core.api import Core, hookimpl
    from kemi_core.testing import offline_core

    class Mod:
        def __init__(self, name: str, params: tuple[str, ...]) -> None:
            self.name, self.params = name, params

        @hookimpl
        def mod_register(self, core: Core) -> None:
            for p in self.params:
                core.declare_param(self.name, p, str, "")

    mods = [("alpha", Mod("alpha", ("avp",))), ("beta", Mod("beta", ("avp",))),
            ("gamma", Mod("gamma", ("other",)))]
    core, _ = offline_core(*mods, params={("alpha|beta|gamma", "avp"): "$avp(X)"})
    assert [core.modparam(m, "avp") for m in ("alpha", "beta")] == ["$avp(X)", "$avp(X)"]
    with pytest.raises(ConfigError, match="no loaded module matching"):
        core.set_param("alph.|gamma", "missing", "v")
    with pytest.raises(ConfigError, match="not loaded"):
        core.set_param("delta", "avp", "v")
