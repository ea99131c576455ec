"""tls.cfg parsing and profile selection (sans-IO), and contexts built from profiles."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from kemi_core.api import ConfigError
from kemi_tls.contexts import Contexts, build_context
from kemi_tls.profiles import Domain, Profile, complete, parse_text, sni_matches
from kemi_tls.testing import make_pki

SAMPLE = """
# a comment
[server:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = no
private_key = /k.pem   # trailing comment
certificate = "/c.pem"

[server:127.0.0.1:5061]
method = TLSv1.2
server_name = kamailio.org
server_name_mode = 1

[client:[::1]:5061]
verify_certificate = no
server_id = peer1

[server:any]
server_name = other.org
"""


def test_parse_sample() -> None:
    profs = parse_text(SAMPLE, "tls.cfg")
    assert [p.name for p in profs] == ["server:default", "server:127.0.0.1:5061",
                                       "client:[::1]:5061", "server:any"]
    d = profs[0]
    assert d.attrs == {"tls_method": "TLSv1.2+", "verify_certificate": True,
                       "require_certificate": False, "private_key": "/k.pem",
                       "certificate": "/c.pem"}
    assert profs[1].domain == Domain("addr", "127.0.0.1", 5061) and profs[1].line == 10
    assert profs[1].attrs["server_name_mode"] == 1
    assert profs[2].domain == Domain("addr", "::1", 5061)


@pytest.mark.parametrize(("text", "reason", "line"), [
    ("[server:default]\nmethod = SSLv3\n", "not offered by OpenSSL 3", 2),
    ("[server:default]\nmethod = TLSv9\n", "unknown tls_method", 2),
    # Kamailio 5.6.3 refuses these ("Unsupported enum value"): TLS 1.3 comes with TLSv1.2+
    ("[server:default]\nmethod = TLSv1.3\n", "unknown tls_method", 2),
    ("[server:default]\ntls_method = TLSv1.3+\n", "unknown tls_method", 2),
    ("[server:default]\nverify_certificate = maybe\n", "expected yes or no", 2),
    ("[server:default]\nfoo = 1\n", "unknown TLS profile attribute 'foo'", 2),
    ("certificate = /c.pem\n", "before any [server:...]", 1),
    ("[server:1.2.3.4]\n", "bad TLS domain", 1),
    ("[server:default\n", "bad profile header", 1),
    ("[server:default]\nnot an assignment\n", "expected name = value", 2),
    ("[client:default]\nverify_client = sometimes\n", "verify_client", 2),
])
def test_errors_name_file_and_line(text: str, reason: str, line: int) -> None:
    with pytest.raises(ConfigError) as err:
        parse_text(text, "/etc/tls.cfg")
    assert reason in str(err.value) and err.value.file == "/etc/tls.cfg"
    assert err.value.line == line


def test_rules_across_profiles() -> None:
    twice = parse_text("[server:default]\n[server:default]\n", "t.cfg")
    with pytest.raises(ConfigError, match="defined twice"):
        complete(twice, {})
    anon_any = parse_text("[server:any]\nmethod = TLSv1.2+\n", "t.cfg")
    with pytest.raises(ConfigError, match="must set server_name"):
        complete(anon_any, {})


def test_complete_fills_from_modparams_and_adds_defaults() -> None:
    profs = parse_text("[server:127.0.0.1:5061]\ncertificate = /own.pem\n", "t.cfg")
    got = complete(profs, {"certificate": "/mod.pem", "tls_method": "TLSv1.2+",
                           "ca_list": None})
    assert got.server[0].attrs["certificate"] == "/own.pem"
    assert got.server[0].attrs["tls_method"] == "TLSv1.2+"
    assert "ca_list" not in got.server[0].attrs
    assert got.server_default().attrs["certificate"] == "/mod.pem"
    assert got.client_default().domain.kind == "default"


@pytest.mark.parametrize(("pattern", "mode", "name", "ok"), [
    ("kemi.org", 0, "kemi.org", True), ("kemi.org", 0, "a.kemi.org", False),
    ("kemi.org", 1, "a.kemi.org", True), ("kemi.org", 1, "kemi.org", True),
    ("kemi.org", 2, "kemi.org", False), ("kemi.org", 2, "b.a.kemi.org", True),
    ("kemi.org", 1, "xkemi.org", False), ("Kemi.Org", 0, "kemi.org.", True),
])
def test_sni_match_modes(pattern: str, mode: int, name: str, ok: bool) -> None:
    assert sni_matches(pattern, mode, name) is ok


def test_contexts_and_selection(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    text = (f"[server:default]\nmethod = TLSv1.2+\ncertificate = {pki.server_cert}\n"
            f"private_key = {pki.server_key}\nverify_certificate = yes\nca_list = {pki.ca}\n"
            f"[server:127.0.0.1:5061]\nmethod = TLSv1.2\ncertificate = {pki.server_cert}\n"
            f"private_key = {pki.server_key}\n"
            "[client:127.0.0.1:6000]\nverify_certificate = no\nserver_name = peer.test\n"
            "[client:any]\nserver_id = idx\nserver_name = by.id\n")
    ctx = Contexts(complete(parse_text(text, "t.cfg"), {"tls_method": "TLSv1.2+"}))
    default = ctx.server_context(("10.0.0.1", 5061))
    assert default.minimum_version == ssl.TLSVersion.TLSv1_2
    assert default.verify_mode == ssl.CERT_OPTIONAL  # verify without require: asked, optional
    own = ctx.server_context(("127.0.0.1", 5061))
    assert own.minimum_version == own.maximum_version == ssl.TLSVersion.TLSv1_2
    c, sni = ctx.client_context(("127.0.0.1", 6000))
    assert c.verify_mode == ssl.CERT_NONE and sni == "peer.test" and not c.check_hostname
    assert ctx.client_context(("127.0.0.1", 6001))[1] is None
    assert ctx.client_context(("1.2.3.4", 1), server_id="idx")[1] == "by.id"


def test_missing_files_are_refused_at_the_profile(tmp_path: Path) -> None:
    prof = Profile("server", Domain("default"), {"certificate": str(tmp_path / "none.pem"),
                                                 "tls_method": "TLSv1.2+"}, "tls.cfg", 7)
    with pytest.raises(ConfigError) as err:
        build_context(prof)
    assert "cannot load certificate" in str(err.value) and err.value.line == 7
    no_cert = Profile("server", Domain("default"), {"tls_method": "TLSv1.2+"})
    with pytest.raises(ConfigError, match="needs a certificate"):
        build_context(no_cert)
