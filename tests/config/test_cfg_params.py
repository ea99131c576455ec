"""Global parameters: value types, listen/alias forms, known-but-ignored and unknown names."""

from __future__ import annotations

import logging
import textwrap

import pytest

from kemi_core.config import parse_config_text
from kemi_core.config.core_params import IMPLEMENTED, KNOWN, NOT_IMPLEMENTED
from kemi_core.config.model import Alias, CoreConfig, ListenAddr
from kemi_core.errors import ConfigError


def P(text: str, **kw: object) -> CoreConfig:
    return parse_config_text(textwrap.dedent(text).lstrip("\n"), source="t.cfg", **kw)  # type: ignore[arg-type]


def test_value_types_and_spacing() -> None:
    cfg = P("""
        debug = 4
        children=6
        fork = no
        log_stderror=on
        auto_aliases=false
        log_prefix = '{$ci} '
        log_facility=LOG_LOCAL3
        mpath="/usr/lib/kamailio/modules/"
        port=5070
        memdbg=5
        memlog = 1
        tcp_max_connections=4096
        tcp_connection_lifetime=3605
    """)
    assert (cfg.debug, cfg.children, cfg.fork, cfg.log_stderror) == (4, 6, False, True)
    assert cfg.auto_aliases is False
    assert cfg.log_prefix == "{$ci} "
    assert cfg.log_facility == "LOG_LOCAL3"
    assert cfg.mpath == "/usr/lib/kamailio/modules/"
    assert cfg.port == 5070
    assert (cfg.memdbg, cfg.memlog) == (5, 1)
    assert (cfg.tcp_max_connections, cfg.tcp_connection_lifetime) == (4096, 3605)


@pytest.mark.parametrize("text, value", [
    ("yes", True), ("no", False), ("on", True), ("off", False), ("true", True),
    ("false", False), ("enable", True), ("disable", False), ("1", True), ("0", False),
])
def test_bool_words(text: str, value: bool) -> None:
    assert P(f"fork={text}\n").fork is value


def test_debug_negative_hex_and_bool_as_int() -> None:
    assert P("debug=-3\n").debug == -3
    assert P("debug=0x3\n").debug == 3
    assert P("children=yes\n").children == 1  # Kamailio reads yes as 1


def test_several_statements_on_a_line() -> None:
    cfg = P("debug=3; children=4\nfork=no port=5090\n")
    assert (cfg.debug, cfg.children, cfg.fork, cfg.port) == (3, 4, False, 5090)


def test_string_concatenation() -> None:
    assert P('log_prefix="a" "b"\n').log_prefix == "ab"


def test_loadpath_mpath_forms() -> None:
    assert P('loadpath "/a:/b"\n').mpath == "/a:/b"
    assert P('mpath "/c"\n').mpath == "/c"
    assert P('loadpath="/d"\n').mpath == "/d"


def test_cfgengine_forms() -> None:
    assert P('cfgengine "lua"\n').cfgengine == "lua"
    cfg = P('debug=1\ncfgengine = "python"\n')
    assert cfg.cfgengine == "python"
    assert cfg.cfgengine_line is not None
    assert (cfg.cfgengine_line.file, cfg.cfgengine_line.line) == ("t.cfg", 2)
    assert P('cfgengine "native"\n').engine_name == "native"
    assert P("debug=1\n").engine_name == "native"


def test_kemi_callbacks() -> None:
    cfg = P("""
        kemi.request_route_callback="my_req"
        kemi.reply_route_callback = "my_rpl"
        kemi.onsend_route_callback="none"
        kemi.event_route_callback="ksr_event"
        kemi.pre_routing_callback="pre"
        kemi.received_route_callback="rcv"
    """)
    assert cfg.kemi_callbacks == {
        "request_route_callback": "my_req", "reply_route_callback": "my_rpl",
        "onsend_route_callback": "", "event_route_callback": "ksr_event",
        "pre_routing_callback": "pre", "received_route_callback": "rcv",
    }


# ---- listen --------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("udp:127.0.0.1:5060", [ListenAddr("udp", "127.0.0.1", 5060)]),
    ("tcp:127.0.0.1:5061", [ListenAddr("tcp", "127.0.0.1", 5061)]),
    ("127.0.0.1", [ListenAddr("udp", "127.0.0.1", 5060), ListenAddr("tcp", "127.0.0.1", 5060)]),
    ("127.0.0.1:5070", [ListenAddr("udp", "127.0.0.1", 5070), ListenAddr("tcp", "127.0.0.1", 5070)]),
    ("udp:[::1]:5060", [ListenAddr("udp", "::1", 5060)]),
    ("[::1]", [ListenAddr("udp", "::1", 5060), ListenAddr("tcp", "::1", 5060)]),
    ("udp:localhost:5080", [ListenAddr("udp", "localhost", 5080)]),
    ("UDP:eth0:5062", [ListenAddr("udp", "eth0", 5062)]),
    ("udp:10.0.0.1:5060 advertise 1.2.3.4:5080",
     [ListenAddr("udp", "10.0.0.1", 5060, "1.2.3.4", 5080)]),
    ('udp:10.0.0.1:5060 advertise "sip.example.com"',
     [ListenAddr("udp", "10.0.0.1", 5060, "sip.example.com", None)]),
    ('udp:1.2.3.4:5060 name "x"', [ListenAddr("udp", "1.2.3.4", 5060, name="x")]),
    ('tcp:1.2.3.4:5060 advertise 5.6.7.8:5060 name "s2" virtual',
     [ListenAddr("tcp", "1.2.3.4", 5060, "5.6.7.8", 5060, "s2", True)]),
])
def test_listen_forms(value: str, expected: list[ListenAddr]) -> None:
    assert P(f"listen={value}\n").listen == expected


def test_listen_repeatable_and_default_port_from_port_param() -> None:
    cfg = P("listen=udp:127.0.0.1\nlisten=tcp:127.0.0.1:5061\nport=5090\n")
    assert cfg.listen == [ListenAddr("udp", "127.0.0.1", 5090), ListenAddr("tcp", "127.0.0.1", 5061)]


def test_listen_unsupported_proto_warns_and_skips(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "kemi.config")
    cfg = P("listen=udp:127.0.0.1:5060\nlisten=tls:127.0.0.1:5061\n")
    assert cfg.listen == [ListenAddr("udp", "127.0.0.1", 5060)]
    assert cfg.ignored["listen"] == ["tls:127.0.0.1:5061"]
    assert any("t.cfg:2" in r.getMessage() and "tls" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("value, reason", [
    ("udp:127.0.0.1:99999", "out of range"),
    ("udp:127.0.0.1:abc", "bad port"),
    ("foo:1.2.3.4:5060", "unknown protocol"),
    ("::1", "brackets"),
    ("udp:[zz::1]:5060", "bad IPv6"),
    ("udp:127.0.0.1:5060 bogus", "unexpected 'bogus'"),
    ("udp:127.0.0.1:5060 name s1", "quoted"),
    ("udp:127.0.0.1:5060 advertise", "needs a value"),
    ("udp:127.0.0.1:5060 advertise udp:1.2.3.4", "no protocol"),
    ("udp:bad_host!:5060", "bad host"),
])
def test_bad_listen(value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as ei:
        P(f"debug=1\nlisten={value}\n")
    assert (ei.value.file, ei.value.line) == ("t.cfg", 2)
    assert reason in ei.value.reason


# ---- alias ---------------------------------------------------------------------------------
def test_alias_forms() -> None:
    cfg = P("""
        alias=sip.example.com
        alias="other.example.com"
        alias=third.example.com:5080
        alias=udp:fourth.example.com:5060 fifth.example.com
    """)
    assert cfg.aliases == [
        Alias("sip.example.com"), Alias("other.example.com"), Alias("third.example.com", 5080),
        Alias("fourth.example.com", 5060, "udp"), Alias("fifth.example.com"),
    ]


def test_bad_alias() -> None:
    with pytest.raises(ConfigError) as ei:
        P("alias=exa mple.com:0\n")
    assert ei.value.line == 1 and "out of range" in ei.value.reason


# ---- known-but-ignored, unknown, custom --------------------------------------------------------
def test_not_implemented_params_warn_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "kemi.config")
    cfg = P("""
        dns=no
        rev_dns=no
        disable_tcp=yes
        tcp_children=4
        dns=yes
        tos=IPTOS_LOWDELAY
        server_header="Server: kemi"
        udp_mtu_try_proto = TCP
        tcp_source_ipv4 = 1.2.3.4
    """)
    assert cfg.ignored == {"dns": True, "rev_dns": False, "disable_tcp": True, "tcp_children": 4,
                           "tos": "IPTOS_LOWDELAY", "server_header": "Server: kemi",
                           "udp_mtu_try_proto": "TCP", "tcp_source_ipv4": "1.2.3.4"}
    msgs = [r.getMessage() for r in caplog.records if r.name == "kemi.config"]
    assert len(msgs) == 8
    assert sum("'dns'" in m for m in msgs) == 1
    assert "t.cfg:1" in msgs[0]


def test_param_tables_are_consistent() -> None:
    assert not set(IMPLEMENTED) & NOT_IMPLEMENTED
    assert {"dns", "rev_dns", "disable_tcp", "shm_mem_size", "tcp_children"} <= NOT_IMPLEMENTED
    assert {"listen", "alias", "port", "debug", "mpath", "loadpath"} <= KNOWN
    assert "pid_file" not in KNOWN


@pytest.mark.parametrize("text, reason", [
    ("dbug=3", "unknown core parameter 'dbug' (did you mean 'debug'?)"),
    ("pid_file=\"/run/k.pid\"", "unknown core parameter 'pid_file'"),
    ("kemi.request_route_calback=\"x\"", "unknown core parameter"),
])
def test_unknown_parameter(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as ei:
        P(f"debug=1\n\n{text}\n")
    assert (ei.value.file, ei.value.line) == ("t.cfg", 3)
    assert reason in ei.value.reason


@pytest.mark.parametrize("text, reason", [
    ('port="5060"', "'port' expects a number"),
    ("port=0", "out of range"),
    ('fork="yes"', "'fork' expects yes/no"),
    ("log_prefix=3", "'log_prefix' expects a quoted string"),
    ("cfgengine=lua", "'cfgengine' expects a quoted string"),
    ("log_facility=LOG_LOCL0", "unknown log facility"),
    ("children=-2", "cannot be negative"),
    ("debug=", "missing value"),
    ("debug 3", "expected '=' after 'debug'"),
])
def test_bad_values(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as ei:
        P(f"fork=yes\n{text}\n")
    assert (ei.value.file, ei.value.line) == ("t.cfg", 2)
    assert reason in ei.value.reason


def test_custom_cfg_vars() -> None:
    cfg = P("""
        pstn.gw_ip = "10.0.0.1" desc "PSTN GW Address"
        pstn.gw_port = 5060
        voicemail.enabled = yes descr "on/off"
    """)
    assert cfg.extra == {"pstn.gw_ip": "10.0.0.1", "pstn.gw_port": 5060, "voicemail.enabled": 1}
    assert cfg.cfg_var_descriptions == {"pstn.gw_ip": "PSTN GW Address",
                                        "voicemail.enabled": "on/off"}


def test_bad_custom_cfg_var() -> None:
    with pytest.raises(ConfigError) as ei:
        P('pstn.gw = 1.2.3.4 desc "x"\n')
    assert ei.value.line == 1 and "number or a quoted string" in ei.value.reason
    with pytest.raises(ConfigError, match="desc expects"):
        P("pstn.gw = 1 desc x\n")


def test_named_flags() -> None:
    cfg = P("flags a, b:2, c;\navpflags x\n")
    assert cfg.extra["flags"] == {"a": None, "b": 2, "c": None}
    assert cfg.extra["avpflags"] == {"x": None}
    with pytest.raises(ConfigError) as ei:
        P("debug=1\nflags a b\n")
    assert ei.value.line == 2
