"""The tls module in a real kemi process: profiles from tls.cfg per listen socket and by SNI,
client certificates and $tls_* variables, tls.list / tls.info / tls.reload, outgoing TLS with
connection reuse, and bad peers that cost nothing but their own connection."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_core.sip import StreamBuffer
from kemi_core.testing import KemiProcess, free_port, wait_until
from kemi_tls.testing import Pki, issue, make_pki, reissue_server
from kemi_websocket.testing import StreamSipClient

pytestmark = pytest.mark.e2e

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
enable_tls=yes
listen=udp:127.0.0.1:{udp}
listen=tls:127.0.0.1:{tls}
listen=tls:127.0.0.1:{tls2}
loadmodule "tls.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "pv.so"
loadmodule "textops.so"
modparam("tls", "config", "tls.cfg")
modparam("tls", "handshake_timeout", 1)
request_route {{
    if ($rU == "relay") {{
        $du = "sip:127.0.0.1:{next_hop};transport=tls";
        t_relay();
        exit;
    }}
    append_to_reply("X-Tls: $tls_version|$tls_peer_subject_cn|$tls_my_subject_cn|$tls_peer_verified|$tls_peer_server_name|$proto\\r\\n");
    sl_send_reply("200", "OK");
}}
"""

TLS_CFG = """# profiles of the test server
[server:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = no
certificate = {cert}
private_key = {key}
ca_list = {ca}

[server:127.0.0.1:{tls2}]
method = TLSv1.2
certificate = {cert2}
private_key = {key2}

[server:any]
method = TLSv1.2+
server_name = sni.kemi.test
certificate = {sni_cert}
private_key = {sni_key}

[client:default]
method = TLSv1.2+
verify_certificate = yes
ca_list = {ca}
"""


def _pem(pki: Pki, cn: str, name: str) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(pki.ca, "rb") as fh:
        ca_cert = x509.load_pem_x509_certificate(fh.read())
    with open(pki.ca_key, "rb") as fh:
        ca_key = serialization.load_pem_private_key(fh.read(), None)
    cert, key = issue(ca_cert, ca_key, cn, "ec", server=True)  # type: ignore[arg-type]
    cpath, kpath = Path(pki.directory) / f"{name}.pem", Path(pki.directory) / f"{name}-key.pem"
    cpath.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kpath.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    return str(cpath), str(kpath)


class NextHop:
    """A TLS SIP server answering 200 to what it gets, counting connections."""

    def __init__(self, pki: Pki) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki.server_cert, pki.server_key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests = 0
        self.stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                raw, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._conn, args=(raw,), daemon=True).start()

    def _conn(self, raw: socket.socket) -> None:
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
            buf = StreamBuffer()
            conn.settimeout(10)
            while not self.stop:
                data = conn.recv(65536)
                if not data:
                    return
                for msg in buf.feed(data):
                    self.requests += 1
                    vias = "".join(f"Via: {v}\r\n" for v in msg.headers("via"))
                    conn.sendall((f"SIP/2.0 200 OK\r\n{vias}From: {msg.header('from')}\r\n"
                                  f"To: {msg.header('to')};tag=nh\r\nCall-ID: {msg.call_id}\r\n"
                                  f"CSeq: {msg.header('cseq')}\r\nContent-Length: 0\r\n\r\n"
                                  ).encode())
        except (OSError, ssl.SSLError):
            return


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    base = tmp_path_factory.mktemp("tls")
    pki = make_pki(base / "pki")
    cert2, key2 = _pem(pki, "second.kemi.test", "second")
    sni_cert, sni_key = _pem(pki, "sni.kemi.test", "sni")
    ports = {"udp": free_port(), "tls": free_port(), "tls2": free_port()}
    hop = NextHop(pki)
    (base / "tls.cfg").write_text(TLS_CFG.format(cert=pki.server_cert, key=pki.server_key,
                                                 ca=pki.ca, cert2=cert2, key2=key2,
                                                 sni_cert=sni_cert, sni_key=sni_key, **ports))
    (base / "kamailio.cfg").write_text(CFG.format(next_hop=hop.port, **ports))
    with KemiProcess(base / "kamailio.cfg", base) as srv:
        yield {"srv": srv, "pki": pki, "ports": ports, "hop": hop, "base": base}
    hop.stop = True


def options(client: StreamSipClient, n: int = 1, user: str = "u") -> dict[str, str]:
    client.send(f"OPTIONS sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS c.invalid;branch="
                f"z9hG4bKt{n}{time.monotonic_ns()}\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:{user}@x>"
                f"\r\nCall-ID: t{n}-{time.monotonic_ns()}\r\nCSeq: {n} OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n")
    reply = client.expect(lambda m: not m.is_request, 10)
    fields = (reply.header("X-Tls") or "").split("|")
    keys = ["version", "peer_cn", "my_cn", "verified", "sni", "proto"]
    return {"status": str(reply.status), **dict(zip(keys, fields, strict=False))}


def test_default_profile_and_variables(env: dict) -> None:
    pki = env["pki"]
    with StreamSipClient("127.0.0.1", env["ports"]["tls"], tls=pki.client_context()) as c:
        got = options(c)
    assert got["status"] == "200"
    assert got["version"] == "TLSv1.3" and got["proto"] == "tls"
    assert got["my_cn"] == "kemi.test" and got["peer_cn"] == "<null>" and got["verified"] == "0"
    # with a client certificate signed by the CA the server trusts
    with StreamSipClient("127.0.0.1", env["ports"]["tls"],
                         tls=pki.client_context(with_cert=True)) as c:
        got = options(c)
    assert got["peer_cn"] == "alice.kemi.test" and got["verified"] == "1"


def test_profile_of_the_listen_socket(env: dict) -> None:
    """[server:127.0.0.1:PORT2]: its own certificate, TLS 1.2 only."""
    pki = env["pki"]
    with StreamSipClient("127.0.0.1", env["ports"]["tls2"], tls=pki.client_context()) as c:
        got = options(c)
    assert got["my_cn"] == "second.kemi.test" and got["version"] == "TLSv1.2"
    tls13 = pki.client_context(minimum=ssl.TLSVersion.TLSv1_3)
    with pytest.raises((ssl.SSLError, OSError)):
        StreamSipClient("127.0.0.1", env["ports"]["tls2"], tls=tls13).close()


def test_sni_picks_the_profile_with_that_server_name(env: dict) -> None:
    pki = env["pki"]
    with StreamSipClient("127.0.0.1", env["ports"]["tls"], tls=pki.client_context(),
                         server_hostname="sni.kemi.test") as c:
        got = options(c)
    assert got["my_cn"] == "sni.kemi.test" and got["sni"] == "sni.kemi.test"


def test_tls_list_and_info(env: dict) -> None:
    srv, pki = env["srv"], env["pki"]
    with StreamSipClient("127.0.0.1", env["ports"]["tls"], tls=pki.client_context()) as c:
        options(c)
        port = c.local()[1]
        listed = srv.rpc("tls.list")
        mine = [e for e in listed if e["src_port"] == port]
        assert mine and mine[0]["state"] == "established" and "TLS_" in mine[0]["cipher"]
        assert srv.rpc("tls.info")["opened_connections"] >= 1
    wait_until(lambda: all(e["src_port"] != port for e in srv.rpc("tls.list")), 5,
               "the closed connection gone from tls.list")


def test_close_notify_is_answered(env: dict) -> None:
    """A client closing cleanly sends close_notify and waits for the server's (as asyncio's
    TLS streams do): it gets it at once and the connection closes."""
    raw = socket.create_connection(("127.0.0.1", env["ports"]["tls"]), timeout=5)
    with env["pki"].client_context().wrap_socket(raw) as conn:
        conn.sendall(b"OPTIONS sip:u@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS c.invalid;branch="
                     b"z9hG4bKcn\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:u@x>\r\nCall-ID: cn\r\n"
                     b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        assert conn.recv(65536).startswith(b"SIP/2.0 200")
        plain = conn.unwrap()  # raises TimeoutError when the server does not answer it
        assert _closed_by_server(plain, 5)
        plain.close()


def test_outgoing_tls_and_connection_reuse(env: dict) -> None:
    pki, hop = env["pki"], env["hop"]
    before = hop.connections
    with StreamSipClient("127.0.0.1", env["ports"]["tls"], tls=pki.client_context()) as c:
        for n in range(3):
            assert options(c, n + 1, user="relay")["status"] == "200"
    assert hop.requests >= 3
    # one connection per worker at most: the workers reuse theirs
    assert hop.connections - before <= 2


def test_tls_reload_new_certificate_without_restart(env: dict) -> None:
    srv, pki = env["srv"], env["pki"]
    with StreamSipClient("127.0.0.1", env["ports"]["tls"], tls=pki.client_context()) as old:
        assert options(old)["my_cn"] == "kemi.test"
        reissue_server(pki, "renewed.kemi.test")
        assert "reloaded" in srv.rpc("tls.reload")
        # new connections present the new certificate (every worker follows) ...
        for _ in range(4):
            with StreamSipClient("127.0.0.1", env["ports"]["tls"], tls=pki.client_context()) as c:
                assert options(c)["my_cn"] == "renewed.kemi.test"
        # ... the open one goes on with its session
        assert options(old, 2)["status"] == "200"


def _served(env: dict) -> bool:
    with StreamSipClient("127.0.0.1", env["ports"]["tls"], tls=env["pki"].client_context()) as c:
        return options(c)["status"] == "200"


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def test_plaintext_on_the_tls_port_costs_only_its_connection(env: dict) -> None:
    s = socket.create_connection(("127.0.0.1", env["ports"]["tls"]))
    s.sendall(b"OPTIONS sip:u@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n")
    assert _closed_by_server(s, 3)
    s.close()
    assert _served(env)


def test_truncated_handshake_costs_only_its_connection(env: dict) -> None:
    ctx = env["pki"].client_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=None)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = out.read()
    s = socket.create_connection(("127.0.0.1", env["ports"]["tls"]))
    s.sendall(hello[: len(hello) // 2])  # half a ClientHello, then nothing
    assert _served(env)  # meanwhile others are served
    assert _closed_by_server(s, 5)  # and the half one is dropped (handshake_timeout 1 s)
    s.close()


def test_slow_handshake_is_dropped_and_others_served(env: dict) -> None:
    idle = [socket.create_connection(("127.0.0.1", env["ports"]["tls"])) for _ in range(20)]
    assert _served(env)
    t0 = time.monotonic()
    assert all(_closed_by_server(s, 5) for s in idle)
    assert time.monotonic() - t0 < 5
    for s in idle:
        s.close()
    assert _served(env)
