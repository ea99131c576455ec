"""No listen= in kamailio.cfg: every IPv4 address of the host, UDP and TCP, as Kamailio binds
(checked on paper: no socket is opened here)."""

from __future__ import annotations

from pathlib import Path

from kemi_core.runtime.builder import Overrides, load_config
from kemi_core.runtime.interfaces import local_addresses


def _cfg(tmp_path: Path, extra: str = "") -> Path:
    p = tmp_path / "k.cfg"
    p.write_text(f"#!KAMAILIO\nport=5999\n{extra}\nrequest_route {{ drop; }}\n")
    return p


def test_every_local_ipv4_address_udp_and_tcp(tmp_path: Path) -> None:
    cfg = load_config(_cfg(tmp_path))
    addrs = local_addresses()
    assert "127.0.0.1" in addrs and all(":" not in a for a in addrs)
    assert [(x.proto, x.host, x.port) for x in cfg.listen] == (
        [("udp", a, 5999) for a in addrs] + [("tcp", a, 5999) for a in addrs])


def test_disable_tcp_and_auto_bind_ipv6(tmp_path: Path) -> None:
    cfg = load_config(_cfg(tmp_path, "disable_tcp=yes\nauto_bind_ipv6=1"))
    assert {x.proto for x in cfg.listen} == {"udp"}
    assert [x.host for x in cfg.listen] == local_addresses(ipv6=True)
    assert all(not x.host.lower().startswith("fe80") for x in cfg.listen)


def test_listen_given_on_the_command_line_wins(tmp_path: Path) -> None:
    cfg = load_config(_cfg(tmp_path), Overrides(listen=["udp:127.0.0.1:5070"]))
    assert [(x.proto, x.host, x.port) for x in cfg.listen] == [("udp", "127.0.0.1", 5070)]
