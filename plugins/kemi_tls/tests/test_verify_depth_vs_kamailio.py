"""tls ``verify_depth`` and what a tls.cfg profile leaves unset, on kemi and on Kamailio 5.6
with the same config: a client presents a certificate issued through N intermediate CAs to a
server that requires one; both servers accept or refuse it alike. Certificates are made here.

What Kamailio 5.6.3 does (run): depth D admits D certificates between the peer's and the trust
anchor; with a tls.cfg the module parameters are not used at all (a profile's unset attributes
take the module's own values: verify_depth 9, no certificate asked for, any TLS version), only
without one do they make the profiles.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, side_by_side
from kemi_tls.contexts import build_context
from kemi_tls.profiles import Domain, Profile
from kemi_tls.testing import REFUSED, Chain, make_chain, options_status

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("tls.so"), reason="Kamailio 5.6 with tls is not installed")]

CFG = cfg_preamble("tls", "sl", "pv", defines="enable_tls=yes").replace(
    "listen=udp:", "listen=tls:") + """PARAMS
request_route {
    sl_send_reply("200", "verified $tls_peer_verified");
}
"""
PROFILE = """[server:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
certificate = {cert}
private_key = {key}
ca_list = {root}
"""


def _modparams(chain: Chain, extra: str) -> str:
    return "\n".join([
        'modparam("tls", "tls_method", "TLSv1.2+")', 'modparam("tls", "verify_certificate", 1)',
        'modparam("tls", "require_certificate", 1)',
        f'modparam("tls", "certificate", "{chain.server_chain}")',
        f'modparam("tls", "private_key", "{chain.server_key}")',
        f'modparam("tls", "ca_list", "{chain.root}")', extra])


OK = "SIP/2.0 200 verified 1"
#: (intermediate CAs, tls.cfg lines added or removed, module parameters, TLS 1.2 client, answer)
CASES = {
    "depth 2, two CAs": (2, "verify_depth = 2", "", False, OK),
    "depth 1, two CAs": (2, "verify_depth = 1", "", False, REFUSED),
    "depth 0, one CA": (1, "verify_depth = 0", "", False, REFUSED),
    "depth 0, no CA": (0, "verify_depth = 0", "", False, OK),
    "modparam ignored with tls.cfg": (2, "", 'modparam("tls", "verify_depth", 1)', False, OK),
    "modparam without tls.cfg": (2, None, 'modparam("tls", "verify_depth", 1)', False, REFUSED),
    "verify_certificate modparam ignored": (0, "-verify", 'modparam("tls", "verify_certificate", 1)'
                                            '\nmodparam("tls", "require_certificate", 1)', False,
                                            "SIP/2.0 200 verified 0"),
    "tls_method modparam ignored": (0, "-method", 'modparam("tls", "tls_method", "TLSv1.1")', True,
                                    OK),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_verify_depth_and_profile_defaults_match_kamailio(tmp_path: Path, case: str) -> None:
    intermediates, lines, params, tls12, expected = CASES[case]
    chain = make_chain(tmp_path / "pki", intermediates)
    profile = PROFILE.format(cert=chain.server_chain, key=chain.server_key, root=chain.root)
    if lines is None:  # no tls.cfg: the module parameters make the profiles
        cfg = CFG.replace("PARAMS", _modparams(chain, params))
    else:
        if lines == "-verify":
            profile = profile.replace("verify_certificate = yes\nrequire_certificate = yes\n", "")
        elif lines == "-method":
            profile = profile.replace("method = TLSv1.2+\n", "")
        else:
            profile += lines + "\n"
        cfg = CFG.replace("PARAMS", 'modparam("tls", "config", "{dir}/tls.cfg")\n' + params)
    client = (chain.client_chain, chain.client_key)
    with side_by_side(cfg, tmp_path, files={"tls.cfg": profile}) as pair:
        got = (options_status(pair.kemi_port, client, tls12),
               options_status(pair.kamailio_port, client, tls12))
    assert got == (expected, expected), pair.kemi.log()[-2000:]


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> bool:
    """An in-memory TLS handshake; True when it completes."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    cli = client.wrap_bio(c_in, c_out, server_side=False)
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):  # a handful of flights
        for name, obj, out, peer_in in (("c", cli, c_out, s_in), ("s", srv, s_out, c_in)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError:
                    return False
            data = out.read()
            if data:
                peer_in.write(data)
        if all(done.values()):
            return True
    return False


@pytest.mark.parametrize(("depth", "ok"), [(1, False), (2, True), (9, True)])
def test_client_profile_verify_depth(tmp_path: Path, depth: int, ok: bool) -> None:
    """A client profile (kemi connecting out) bounds the server's chain the same way."""
    chain = make_chain(tmp_path, 2)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(chain.server_chain, chain.server_key)
    client = build_context(Profile("client", Domain("default"), {
        "tls_method": "TLSv1.2+", "verify_certificate": True, "ca_list": chain.root,
        "verify_depth": depth}))
    assert _handshake(client, server) is ok
