"""Debian's default /etc/kamailio/kamailio.cfg (from the kamailio package) parses."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from kemi_core.config import parse_config

DEFAULT_CFG = Path("/etc/kamailio/kamailio.cfg")
pytestmark = pytest.mark.skipif(not DEFAULT_CFG.is_file(), reason="kamailio package not installed")

ALL_FEATURES = [
    "WITH_MYSQL", "WITH_AUTH", "WITH_IPAUTH", "WITH_USRLOCDB", "WITH_PRESENCE", "WITH_MSGREBUILD",
    "WITH_NAT", "WITH_NATSIPPING", "WITH_RTPENGINE", "WITH_PSTN", "WITH_ALIASDB", "WITH_SPEEDDIAL",
    "WITH_MULTIDOMAIN", "WITH_TLS", "WITH_JSONRPC", "WITH_ANTIFLOOD", "WITH_BLOCK3XX",
    "WITH_BLOCK401407", "WITH_VOICEMAIL", "WITH_ACCDB", "WITH_DEBUG",
]


def line_of(text: str) -> int:
    for i, line in enumerate(DEFAULT_CFG.read_text().splitlines(), 1):
        if line.strip() == text:
            return i
    raise AssertionError(text)


def test_default_config(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "kemi.config")
    cfg = parse_config(DEFAULT_CFG)
    assert cfg.debug == 2  # debug=DBGLEVEL with WITH_DEBUG undefined
    assert cfg.log_facility == "LOG_LOCAL0"
    assert cfg.log_prefix == "{$mt $hdr(CSeq) $ci} "
    assert cfg.children == 8
    assert cfg.tcp_connection_lifetime == 3605
    assert "tm" in [m.name for m in cfg.loadmodules]
    assert "db_mysql" not in [m.name for m in cfg.loadmodules]
    acc_flag = next(m for m in cfg.modparams if (m.module, m.name) == ("acc", "log_flag"))
    assert acc_flag.value == 1  # FLT_ACC
    assert acc_flag.line == line_of('modparam("acc", "log_flag", FLT_ACC)')
    names = {(r.kind, r.name) for r in cfg.routes}
    assert {("request_route", None), ("route", "RELAY"), ("route", "REQINIT"),
            ("branch_route", "MANAGE_BRANCH"), ("reply_route", None),
            ("onreply_route", "MANAGE_REPLY"), ("failure_route", "MANAGE_FAILURE")} <= names
    main = next(r for r in cfg.routes if r.kind == "request_route")
    assert main.line == line_of("request_route {")
    assert "setflag(1);" in main.body  # FLT_ACC substituted inside the block
    assert "do accounting" not in main.body  # comments removed
    assert len(cfg.defines) > 10 and cfg.defines["FLT_ACCMISSED"] == "2"
    # Kamailio parameters kemi does not implement are reported, one warning each.
    assert set(cfg.ignored) == {"enable_sctp"}
    assert len([r for r in caplog.records if r.name == "kemi.config"]) == 1


def test_default_config_with_every_feature() -> None:
    cfg = parse_config(DEFAULT_CFG, defines=dict.fromkeys(ALL_FEATURES, ""))
    assert cfg.debug == 3
    mods = [m.name for m in cfg.loadmodules]
    assert {"db_mysql", "auth_db", "tls", "htable", "rtpengine", "debugger", "xhttp"} <= set(mods)
    assert "rtpproxy" not in mods
    db_url = next(m for m in cfg.modparams if (m.module, m.name) == ("acc", "db_url"))
    assert db_url.value == "mysql://kamailio:kamailiorw@localhost/kamailio"  # #!trydef DBURL
    assert cfg.extra["pstn.gw_ip"] == ""
    assert cfg.cfg_var_descriptions["voicemail.srv_port"] == "VoiceMail Port"
    assert ("event_route", "xhttp:request") in {(r.kind, r.name) for r in cfg.routes}
    assert "tls_max_connections" in cfg.ignored
    assert cfg.tcp_accept_no_cl  # WITH_WEBSOCKETS sets it: implemented, not ignored
    assert cfg.enable_tls  # WITH_TLS: served by the tls module
