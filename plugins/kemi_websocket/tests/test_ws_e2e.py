"""xhttp and websocket in a real kemi process (native config): HTTP answers, the handshake's
refusals, keepalive pings, ws.close / ws.disable, the websocket:closed event, and bad peers
(an oversized frame, a request trickled too slowly) that cost nothing but their connection."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wsproto.events import TextMessage

from kemi_core.testing import KemiProcess, free_port, wait_until
from kemi_websocket.testing import WsSipClient

pytestmark = pytest.mark.e2e

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=2
listen=udp:127.0.0.1:{udp}
listen=tcp:127.0.0.1:{ws}
tcp_msg_read_timeout=1
tcp_connection_lifetime=3605
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "xhttp.so"
loadmodule "websocket.so"
modparam("websocket", "keepalive_timeout", 1)
modparam("xhttp", "url_skip", "^/skipped")
request_route {{
    append_to_reply("X-Proto: $proto\\r\\n");
    sl_send_reply("200", "OK");
}}
event_route[xhttp:request] {{
    if ($hu == "/hello") {{
        xhttp_reply("200", "OK", "text/plain", "hello $si $rm $hdr(X-Name)");
        exit;
    }}
    if ($hdr(Upgrade) =~ "websocket" && $hdr(Connection) =~ "Upgrade" && $rm == "GET") {{
        if (ws_handle_handshake()) {{
            exit;
        }}
    }}
    xhttp_reply("404", "Not Found", "", "");
}}
event_route[websocket:closed] {{
    xlog("L_INFO", "ws-closed conid=$ws_conid from $si:$sp\\n");
}}
"""

OPTIONS = ("OPTIONS sip:u@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS x.invalid;branch=z9hG4bK{n}\r\n"
           "From: <sip:a@x>;tag=1\r\nTo: <sip:u@x>\r\nCall-ID: ws{n}\r\nCSeq: 1 OPTIONS\r\n"
           "Content-Length: 0\r\n\r\n")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KemiProcess, int]]:
    base: Path = tmp_path_factory.mktemp("ws")
    ws = free_port()
    (base / "kamailio.cfg").write_text(CFG.format(udp=free_port(), ws=ws))
    with KemiProcess(base / "kamailio.cfg", base) as proc:
        yield proc, ws


def http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        out = b""
        while b"\r\n\r\n" not in out or len(out.split(b"\r\n\r\n", 1)[1]) < _length(out):
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
        return out


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def served(port: int) -> bool:
    with WsSipClient("127.0.0.1", port) as c:
        c.send(OPTIONS.format(n=time.monotonic_ns()))
        reply = c.expect(lambda m: not m.is_request)
        return reply.status == 200 and reply.header("X-Proto") == "ws"


def test_http_requests_reach_the_xhttp_event(srv: tuple[KemiProcess, int]) -> None:
    _, port = srv
    out = http(port, b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Name: kemi\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"hello 127.0.0.1 GET kemi")
    assert b"Content-Type: text/plain" in out
    assert http(port, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404")
    # url_skip: the event does not see it
    assert http(port, b"GET /skipped/x HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 404")
    # a POST with a body, kept alive for a second request on the same connection
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for _ in range(2):
            s.sendall(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            assert s.recv(4096).startswith(b"HTTP/1.1 200 OK")


def test_bad_http_gets_400_and_is_closed(srv: tuple[KemiProcess, int]) -> None:
    _, port = srv
    out = http(port, b"GET /x HTTP/1.1\r\nHost x no colon\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")


def test_handshake_refusals(srv: tuple[KemiProcess, int]) -> None:
    proc, port = srv
    no_sip = WsSipClient("127.0.0.1", port, subprotocols=("msrp",))
    assert no_sip.rejected is not None and no_sip.rejected.status_code == 400
    no_sip.close()
    proc.rpc("ws.disable")
    try:
        off = WsSipClient("127.0.0.1", port)
        assert off.rejected is not None and off.rejected.status_code == 503
        off.close()
    finally:
        proc.rpc("ws.enable")
    assert served(port)


def test_keepalive_pings_and_rpc_close(srv: tuple[KemiProcess, int]) -> None:
    proc, port = srv
    with WsSipClient("127.0.0.1", port) as c:
        c.send(OPTIONS.format(n=1))
        c.expect(lambda m: not m.is_request)
        deadline = time.monotonic() + 8
        while c.pings == 0 and time.monotonic() < deadline:
            try:
                c.expect(lambda m: False, timeout=0.5)
            except TimeoutError:
                pass
        assert c.pings >= 1  # idle 1 s: the server pinged
        local = c.local()[1]
        dump = proc.rpc("ws.dump")
        conid = next(k for k, v in dump["connections"].items() if f":{local} ->" in v)
        assert proc.rpc("ws.close", int(conid)) is None
        closed = c.wait_closed(5)
        assert closed is not None and closed.code == 1000
        proc.wait_log(f"ws-closed conid={conid} from 127.0.0.1:{local}")
    with pytest.raises(Exception, match="Unknown connection ID"):
        proc.rpc("ws.close", 999999)


def test_oversized_frame_costs_only_its_connection(srv: tuple[KemiProcess, int]) -> None:
    _, port = srv
    big = WsSipClient("127.0.0.1", port)
    # a masked text frame announcing 10 MB; only its first bytes follow
    header = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", 10 * 1024 * 1024) + b"\0\0\0\0"
    big.send_raw(header + b"x" * 70000)
    assert served(port)
    closed = big.wait_closed(5)
    assert closed is None or closed.code == 1009
    big.close()
    # a message in fragments adding up to too much is refused the same way
    frag = WsSipClient("127.0.0.1", port)
    for _ in range(3):
        frag.send_raw(frag.ws.send(TextMessage(data="y" * 30000, message_finished=False)))
    closed = frag.wait_closed(5)
    assert closed is None or closed.code == 1009
    frag.close()
    assert served(port)


def test_trickled_request_is_dropped_and_others_served(srv: tuple[KemiProcess, int]) -> None:
    _, port = srv
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpg")  # and never the rest
    assert served(port)
    slow.settimeout(5)
    t0 = time.monotonic()
    try:
        assert slow.recv(4096) == b""
    except ConnectionResetError:
        pass
    assert time.monotonic() - t0 < 5  # tcp_msg_read_timeout=1
    slow.close()
    wait_until(lambda: served(port), 5, "still serving")


PY_CFG = """#!KAMAILIO
children=1
listen=udp:127.0.0.1:{udp}
listen=tcp:127.0.0.1:{ws}
loadmodule "sl.so"
loadmodule "xhttp.so"
loadmodule "websocket.so"
loadmodule "app_python3.so"
modparam("xhttp", "event_callback", "ksr_xhttp_event")
modparam("app_python3", "load", "{script}")
cfgengine "python"
"""

PY_SCRIPT = '''
import KSR


class Handler:
    def ksr_request_route(self, msg):
        KSR.sl.sl_send_reply(200, "OK")
        return 1

    def ksr_xhttp_event(self, msg, evname):
        if KSR.hdr.get("Upgrade") and KSR.websocket.handle_handshake() > 0:
            return 1
        KSR.xhttp.xhttp_reply(200, "OK", "text/plain", "event " + evname + " "
                              + KSR.pv.get("$hu"))
        return 1


def mod_init():
    return Handler()
'''


def test_python_engine_event_callback_gets_the_event_name(tmp_path: Path) -> None:
    ws = free_port()
    (tmp_path / "script.py").write_text(PY_SCRIPT)
    (tmp_path / "kamailio.cfg").write_text(PY_CFG.format(udp=free_port(), ws=ws,
                                                         script=tmp_path / "script.py"))
    with KemiProcess(tmp_path / "kamailio.cfg", tmp_path):
        out = http(ws, b"GET /py HTTP/1.1\r\nHost: x\r\n\r\n")
        assert out.endswith(b"event xhttp:request /py")
        with WsSipClient("127.0.0.1", ws) as c:
            c.send(OPTIONS.format(n=7))
            assert c.expect(lambda m: not m.is_request).status == 200
