"""kemi_core.runtime.myself: which host[:port][;transport] names the server (Kamailio's rules,
compared side by side in tests/e2e/test_myself_vs_kamailio.py)."""

from __future__ import annotations

import pytest

from kemi_core.config.model import Alias, CoreConfig, ListenAddr
from kemi_core.config.values import parse_aliases
from kemi_core.runtime.myself import Myself
from kemi_core.sip.uri import parse_uri


@pytest.fixture
def me() -> Myself:
    cfg = CoreConfig(listen=[ListenAddr("udp", "127.0.0.1", 5070),
                             ListenAddr("udp", "127.0.0.2", 5070, "192.0.2.1", 5080),
                             ListenAddr("tcp", "[::1]", 5070)],
                     aliases=[Alias("any.example.com"), Alias("fixed.example.com", 5060),
                              Alias("secure.example.com", 5061),
                              Alias("tcp.example.com", 5090, "tcp")],
                     auto_aliases=False)
    return Myself.from_config(cfg)


@pytest.mark.parametrize(("host", "port", "proto", "mine"), [
    ("127.0.0.1", 5070, None, True), ("127.0.0.1", None, None, True), ("127.0.0.1", 0, None, True),
    ("127.0.0.1", 5060, None, False), ("127.0.0.1", 5070, "tcp", False),
    ("127.0.0.1", 5070, "udp", True), ("192.0.2.1", 5080, "udp", True),
    ("192.0.2.1", 5070, None, True), ("127.0.0.2", 5080, None, True), ("192.0.2.1", 5081, None, False),
    ("[::1]", 5070, "tcp", True), ("::0:1", 5070, "ws", True), ("::1", 5070, "udp", False),
    ("ANY.example.com", 1, "tls", True), ("fixed.example.com", 5061, None, False),
    ("tcp.example.com", 5090, "udp", False), ("tcp.example.com", 5090, None, True),
    ("other.example.com", None, None, False),
])
def test_matches(me: Myself, host: str, port: int | None, proto: str | None, mine: bool) -> None:
    assert me.matches(host, port, proto) is mine


@pytest.mark.parametrize(("uri", "cfg_mine", "ksr_mine"), [
    ("sip:127.0.0.1", False, True),  # uri == myself: no port is 5060
    ("sip:127.0.0.1:5070", True, True), ("sip:127.0.0.1:5070;transport=tcp", True, False),
    ("sip:fixed.example.com", True, True), ("sips:fixed.example.com", True, True),
    ("sips:secure.example.com", False, True), ("sip:secure.example.com;transport=tls", True, True),
    ("tel:+1234", False, False),
])
def test_uris(me: Myself, uri: str, cfg_mine: bool, ksr_mine: bool) -> None:
    assert me.cfg_uri(parse_uri(uri)) is cfg_mine
    assert me.uri(parse_uri(uri)) is ksr_mine
    assert me.uri_or_host(uri) is ksr_mine


@pytest.mark.parametrize(("text", "mine"), [
    ("127.0.0.1", True), ("127.0.0.1:5070", False), ("SIP:127.0.0.1:5070", False),
    ("sip:127.0.0.1:5070", True), ("", False), ("sip:bad uri", False), ("any.example.com", True),
])
def test_text_without_scheme_is_a_host(me: Myself, text: str, mine: bool) -> None:
    assert me.uri_or_host(text) is mine


def test_aliases_keep_their_transport() -> None:
    assert parse_aliases("tcp:a.example.com:5090 b.example.com") == [
        Alias("a.example.com", 5090, "tcp"), Alias("b.example.com", None, None)]


def test_auto_aliases_add_the_name_an_address_resolves_to(monkeypatch: pytest.MonkeyPatch) -> None:
    import kemi_core.runtime.myself as mod

    def reverse(ip: str) -> tuple[str, list[str], list[str]]:
        if ip != "127.0.0.1":
            raise OSError("no name")
        return "proxy.test", [], [ip]

    monkeypatch.setattr(mod.socket, "gethostbyaddr", reverse)
    cfg = CoreConfig(listen=[ListenAddr("udp", "127.0.0.1", 5070)])
    me = Myself.from_config(cfg)
    assert me.matches("proxy.test", 5070, "udp") and not me.matches("proxy.test", 5071)
    assert [(a.host, a.port, a.proto) for a in me.aliases()] == [("proxy.test", 5070, "udp")]
    cfg.auto_aliases = False
    assert not Myself.from_config(cfg).matches("proxy.test")
