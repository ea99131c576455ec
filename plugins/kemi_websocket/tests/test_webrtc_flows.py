"""SIP over WS, WSS and TLS through one proxy/registrar, on kemi and on Kamailio 5.6 with the
same kamailio.cfg and Lua script (kemi_websocket.webrtc_cfg): registrations over ws:// and
wss://, a MESSAGE between them, a SIPp UDP caller's call to a WebSocket user set up and torn
down through Record-Route, SIP over TLS (OPTIONS, REGISTER), a TLS 1.0 client refused by a
TLSv1.2+ profile, a request to a WebSocket user whose connection is gone.

The certificates are made per run (kemi_tls.testing). The same flows must give the same
outcomes on both servers.
"""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from kemi_core.testing import run_sipp, sipp_available, wait_until
from kemi_websocket.testing import StreamSipClient
from kemi_websocket.testing import WebrtcServer as Server

pytestmark = pytest.mark.e2e

SCENARIO = Path(__file__).resolve().parents[3] / "tests" / "e2e" / "scenarios" / "native_uac_rr.xml"
#: what Kamailio 5.6 answers a request for a WebSocket contact whose connection is closed
#: (t_relay fails at once: no socket for the Via; the script answers sl_reply_error)
GONE_STATUS = 500


def test_register_over_ws_and_wss_and_message_between(server: Server) -> None:
    alice, bob = server.ws("alice"), server.wss("bob")
    with alice.client, bob.client:
        assert alice.register().status == 200
        assert bob.register().status == 200
        done: list[int] = []

        def bob_side() -> None:
            msg = bob.client.expect(lambda m: m.is_request and m.method == "MESSAGE")
            assert msg.body == b"hello bob"
            bob.client.reply_to(msg, 200, "OK")
            done.append(1)

        t = threading.Thread(target=bob_side)
        t.start()
        reply = alice.message("bob", "hello bob")
        t.join(10)
        assert done and reply.status == 200
        # and back, wss -> ws
        t = threading.Thread(target=lambda: alice.client.reply_to(alice.client.expect(
            lambda m: m.is_request and m.method == "MESSAGE"), 200, "OK"))
        t.start()
        assert bob.message("alice", "hi alice").status == 200
        t.join(10)


def test_ws_and_wss_clients_on_one_source_port(server: Server) -> None:
    """A client may use one source port for a ws:// and a wss:// connection (to our two
    listeners): both stay up and each gets its own requests."""
    if server.kind == "kamailio":
        pytest.skip("Kamailio 5.6 sends the wss client's requests on the ws connection that "
                    "shares its source port (docs/tls-websocket.md, what differs)")
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    alice, bob = server.ws("lena", source_port=port), server.wss("mona", source_port=port)
    with alice.client, bob.client:
        assert alice.client.local() == bob.client.local()
        assert alice.register().status == 200
        assert bob.register().status == 200
        for sender, receiver, text in ((alice, bob, "to mona"), (bob, alice, "to lena")):
            t = threading.Thread(target=lambda r=receiver: r.client.reply_to(r.client.expect(
                lambda m: m.is_request and m.method == "MESSAGE", 10), 200, "OK"))
            t.start()
            assert sender.message(receiver.user, text, timeout=10).status == 200
            t.join(10)


@pytest.mark.skipif(not sipp_available(), reason="SIPp (sip-tester) is not installed")
def test_udp_sipp_call_to_websocket_user_through_record_route(server: Server,
                                                                tmp_path: Path) -> None:
    carol = server.ws("carol")
    with carol.client:
        assert carol.register().status == 200
        errors: list[BaseException] = []

        def answer() -> None:
            try:
                carol.answer_call(timeout=20)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

        t = threading.Thread(target=answer)
        t.start()
        result = run_sipp(f"127.0.0.1:{server.ports.udp}", tmp_path, scenario=SCENARIO,
                          calls=1, rate=1, timeout=30, extra=["-s", "carol"])
        t.join(25)
        assert not errors, errors
        assert result.successful == 1, result.stdout[-2000:]


def test_sip_over_tls_options_and_register(server: Server) -> None:
    dave = server.tls("dave")
    with dave.client:
        dave.client.send(dave.request("OPTIONS", "sip:127.0.0.1", "sip:127.0.0.1"))
        assert dave.client.expect(lambda m: not m.is_request).status == 200
        assert dave.register().status == 200


def test_tls10_client_is_refused_by_a_tls12_profile(server: Server) -> None:
    old = server.pki.client_context(minimum=ssl.TLSVersion.TLSv1, maximum=ssl.TLSVersion.TLSv1)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        StreamSipClient("127.0.0.1", server.ports.tls, tls=old).close()
    # a TLS 1.2 client is served on the same port
    ok = server.pki.client_context(minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2)
    ua = server.tls("erin", ok)
    with ua.client:
        ua.client.send(ua.request("OPTIONS", "sip:127.0.0.1", "sip:127.0.0.1"))
        assert ua.client.expect(lambda m: not m.is_request).status == 200


def test_message_to_a_websocket_user_whose_connection_is_gone(server: Server) -> None:
    """The contact stays registered, its connection is closed: the proxy answers at once with an
    error (Kamailio: the send fails), never a hang."""
    frank, gina = server.ws("frank"), server.ws("gina")
    with gina.client:
        assert gina.register().status == 200
        with frank.client:
            assert frank.register().status == 200
            port = frank.client.local()[1]
        # the server has seen the close (until then, on either server, the send may look fine
        # and the MESSAGE waits for tm's timer F)
        wait_until(lambda: f":{port} ->" not in ws_dump(server), 10,
                   "frank's closed connection gone from ws.dump")
        reply = gina.message("frank", "are you there?", timeout=10)
        assert reply.status == GONE_STATUS, reply.to_bytes()


def ws_dump(server: Server) -> str:
    """What the server's ws.dump lists (kamcmd for Kamailio, kemi's RPC for kemi)."""
    if server.kind == "kamailio":
        from kemi_core.testing import kamcmd

        return kamcmd(server.proc.ctl, "ws.dump").stdout  # type: ignore[union-attr]
    return str(server.proc.rpc("ws.dump"))  # type: ignore[union-attr]


def test_ws_closed_connections_leave_ws_dump(server: Server) -> None:
    ua = server.ws("ivan")
    with ua.client:
        assert ua.register().status == 200
        port = ua.client.local()[1]
        wait_until(lambda: f":{port} ->" in ws_dump(server), 5, "the connection in ws.dump")
    wait_until(lambda: f":{port} ->" not in ws_dump(server), 10,
               "the closed connection gone from ws.dump")


def tls_list(server: Server) -> str:
    """What the server's tls.list shows (kamcmd for Kamailio, kemi's RPC for kemi)."""
    if server.kind == "kamailio":
        from kemi_core.testing import kamcmd

        return kamcmd(server.proc.ctl, "tls.list").stdout  # type: ignore[union-attr]
    return str(server.proc.rpc("tls.list"))  # type: ignore[union-attr]


def test_message_to_a_tls_user_whose_connection_is_gone(server: Server) -> None:
    """A user registered over TLS with its own address as Contact hangs up: the relay tries a
    new connection to it, refused at once, and the proxy answers 500 at once (t_relay fails,
    sl_reply_error), on both servers."""
    gina = server.ws("gina3")
    with gina.client:
        assert gina.register().status == 200
        hank = server.tls("hank3")
        with hank.client:
            reply, port = hank.register_own_address()
            assert reply.status == 200
            wait_until(lambda: str(port) in tls_list(server), 5, "the connection in tls.list")
        wait_until(lambda: str(port) not in tls_list(server), 10,
                   "hank's closed connection gone from tls.list")
        reply = gina.message(hank.user, "are you there?", timeout=5)
        assert reply.status == GONE_STATUS, reply.to_bytes()
