"""Which tls ``method`` / ``verify_client`` / ``verify_certificate`` values kemi and Kamailio 5.6
accept: the same config starts on both or is refused by both.

What Kamailio 5.6.3 does (run): in tls.cfg ``method`` (or ``tls_method``) knows TLSv1, TLSv1+,
TLSv1.1, TLSv1.1+, TLSv1.2, TLSv1.2+ and SSLv23, in any case; TLSv1.3 and TLSv1.3+ are an
"Unsupported enum value", SSLv3 has no OpenSSL method. ``verify_client`` is off, on, optional or
optional_no_ca (any case); ``verify_certificate`` / ``require_certificate`` are booleans (yes,
enable, true, 1 ...; "2" is refused). The module parameters ``tls_method`` and
``verify_client`` refuse an unknown value at start too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.testing import (
    KAMAILIO_MPATH,
    KamailioProcess,
    KemiProcess,
    cfg_preamble,
    free_port,
    kamailio_available,
    side_by_side,
)
from kemi_tls.testing import REFUSED, Pki, make_chain, make_pki, options_status

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("tls.so"), reason="Kamailio 5.6 with tls is not installed")]

CFG = cfg_preamble("tls", "sl", "pv", defines="enable_tls=yes").replace(
    "listen=udp:", "listen=tls:") + """PARAMS
request_route {
    sl_send_reply("200", "ok");
}
"""

STARTS = "starts"  # (REFUSED: kemi_tls.testing's, what a failed handshake answers too)
#: (tls.cfg line or None, module parameter line) -> what both servers do
CASES = {
    "method TLSv1.3": ("method = TLSv1.3", "", REFUSED),
    "method TLSv1.3+": ("method = TLSv1.3+", "", REFUSED),
    "tls_method TLSv1.3": ("tls_method = TLSv1.3", "", REFUSED),
    "method TLSv1.2+": ("method = TLSv1.2+", "", STARTS),
    "method tlsv1.2": ("method = tlsv1.2", "", STARTS),
    "method SSLv23": ("method = SSLv23", "", STARTS),
    "method SSLv3": ("method = SSLv3", "", REFUSED),
    "verify_client optional_no_ca": ("verify_client = optional_no_ca", "", STARTS),
    "verify_client ON": ("verify_client = ON", "", STARTS),
    "verify_client bogus": ("verify_client = bogus", "", REFUSED),
    "verify_certificate enable": ("verify_certificate = enable", "", STARTS),
    "verify_certificate 2": ("verify_certificate = 2", "", REFUSED),
    "modparam tls_method TLSv1.3": (None, 'modparam("tls", "tls_method", "TLSv1.3")', REFUSED),
    "modparam verify_client bogus": (None, 'modparam("tls", "verify_client", "bogus")',
                                     REFUSED),
    "modparam verify_client optional_no_ca": (
        None, 'modparam("tls", "verify_client", "optional_no_ca")', STARTS),
}


def _start(who: str, workdir: Path, pki: Pki, line: str | None, param: str) -> str:
    workdir.mkdir(parents=True)
    port = free_port()
    params = [f'modparam("tls", "certificate", "{pki.server_cert}")',
              f'modparam("tls", "private_key", "{pki.server_key}")', param]
    if line is not None:
        (workdir / "tls.cfg").write_text(
            f"[server:default]\n{line}\ncertificate = {pki.server_cert}\n"
            f"private_key = {pki.server_key}\nca_list = {pki.ca}\n")
        params.append(f'modparam("tls", "config", "{workdir / "tls.cfg"}")')
    ctl = workdir / ("kemi_ctl" if who == "kemi" else "ctl")
    text = (CFG.replace("PARAMS", "\n".join(params)).replace("{port}", str(port))
            .replace("{mpath}", KAMAILIO_MPATH).replace("{ctl}", str(ctl)))
    cfg = workdir / "kamailio.cfg"
    cfg.write_text(text)
    server = (KemiProcess(cfg, workdir) if who == "kemi"
              else KamailioProcess(cfg, workdir, f"unix:{ctl}", ready_timeout=10))
    try:
        server.start()
    except RuntimeError:  # exited at start (or never became ready): refused
        return REFUSED
    server.stop()
    return STARTS


@pytest.mark.parametrize("case", sorted(CASES))
def test_tls_option_accepted_or_refused_as_by_kamailio(tmp_path: Path, case: str) -> None:
    line, param, expected = CASES[case]
    pki = make_pki(tmp_path / "pki")
    got = {who: _start(who, tmp_path / who, pki, line, param) for who in ("kamailio", "kemi")}
    assert got == {"kamailio": expected, "kemi": expected}


NO_CA_CFG = CFG.replace('sl_send_reply("200", "ok");',
                        'sl_send_reply("200", "verified $tls_peer_verified");')
NO_CA_PROFILE = """[server:default]
method = TLSv1.2+
verify_client = optional_no_ca
certificate = {cert}
private_key = {key}
ca_list = {ca}
"""


def test_optional_no_ca_lets_any_client_certificate_in_like_kamailio(tmp_path: Path) -> None:
    """optional_no_ca: a certificate is asked for; none, a trusted one and one from a CA the
    server does not know all get in, and $tls_peer_verified says which verified."""
    pki = make_pki(tmp_path / "pki")
    stranger = make_chain(tmp_path / "stranger", 0)  # issued by a CA the server does not know
    profile = NO_CA_PROFILE.format(cert=pki.server_cert, key=pki.server_key, ca=pki.ca)
    cfg = NO_CA_CFG.replace("PARAMS", 'modparam("tls", "config", "{dir}/tls.cfg")')
    clients = [None, (pki.client_cert, pki.client_key),
               (stranger.client_chain, stranger.client_key)]
    with side_by_side(cfg, tmp_path / "run", files={"tls.cfg": profile}) as pair:
        theirs = [options_status(pair.kamailio_port, c) for c in clients]
        ours = [options_status(pair.kemi_port, c) for c in clients]
        log = pair.kemi.log()
    assert theirs == ["SIP/2.0 200 verified 0", "SIP/2.0 200 verified 1",
                      "SIP/2.0 200 verified 0"]
    assert ours == theirs, log[-2000:]
