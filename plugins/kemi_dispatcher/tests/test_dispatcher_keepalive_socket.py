"""Keepalives of a real forked server leave from a listen socket, as Kamailio 5.6 sends them,
and the replies reach the pinger in the main process through whichever worker gets them.

What Kamailio 5.6 does, learnt by running it (a dispatcher list with a UDP answerer on
127.0.0.1, ds_ping_interval 1): the OPTIONS leaves from a UDP listen socket and its Via names
that socket; ``ds_default_socket`` moves it to that socket and a destination's ``socket=``
attribute moves it to its own; From is ``ds_ping_from`` (``sip:dispatcher@localhost``) with a
tag, To the destination's URI, CSeq ``10 OPTIONS``, Max-Forwards 70.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemi_core.sip import SipMsg, parse_datagram
from kemi_core.testing import (
    KemiProcess,
    cfg_preamble,
    free_port,
    kamailio_available,
    side_by_side,
    wait_until,
)
from kemi_tls.testing import make_pki

pytestmark = pytest.mark.e2e

CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork={fork}
children={children}
auto_aliases=no
listen=udp:127.0.0.1:{port}
{listens}
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "dispatcher.so"
modparam("tm", "fr_timer", 1000)
modparam("dispatcher", "list_file", "{list}")
modparam("dispatcher", "ds_ping_interval", 1)
modparam("dispatcher", "ds_probing_mode", 1)
{extra}
request_route {{
  if (method == "MESSAGE") {{
    if (!ds_select_dst("1", "4")) {{
      sl_send_reply("503", "No Destination");
      exit;
    }}
    t_relay();
    exit;
  }}
  sl_send_reply("404", "Not Here");
}}
"""


class Answerer:
    """A destination on 127.0.0.1: reads the keepalives it gets, answers them while
    ``status`` is set (a 200 by default), stays silent while it is None."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.status: int | None = 200
        #: (source address, request) of each keepalive read
        self.got: list[tuple[tuple[str, int], SipMsg]] = []

    def serve(self) -> None:
        """Read (and answer) what has come, for at most one short wait."""
        for _ in range(64):
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                return
            msg = parse_datagram(data)
            self.got.append((addr, msg))
            if self.status is not None:
                self.sock.sendto(reply(msg, self.status), addr)

    def close(self) -> None:
        self.sock.close()


def reply(msg: SipMsg, status: int) -> bytes:
    heads = "".join(f"{name}: {msg.header(name)}\r\n" for name in ("Via", "From", "To",
                                                                  "Call-ID", "CSeq"))
    return f"SIP/2.0 {status} Fine\r\n{heads}Content-Length: 0\r\n\r\n".encode()


@pytest.fixture
def answerers() -> Iterator[list[Answerer]]:
    made = [Answerer(), Answerer()]
    yield made
    for a in made:
        a.close()


def flags(srv: KemiProcess) -> dict[int, str]:
    """Destination port -> its state letters (dispatcher.list)."""
    out = {}
    for rec in srv.rpc("dispatcher.list")["RECORDS"]["SET"]:
        for dest in rec["TARGETS"]["DEST"]:
            out[int(dest["URI"].rsplit(":", 1)[1])] = dest["FLAGS"]
    return out


def until(srv: KemiProcess, answerers: list[Answerer], want: dict[int, str],
          timeout: float = 10.0) -> None:
    """Serve the answerers until the destinations' states are ``want``."""
    def reached() -> bool:
        for a in answerers:
            a.serve()
        return flags(srv) == want
    wait_until(reached, timeout, lambda: f"states {flags(srv)}, not {want}:\n{srv.log()[-3000:]}")


def server(tmp_path: Path, children: int, list_text: str, listens: str = "",
          extra: str = "", fork: bool = True) -> tuple[KemiProcess, int, int]:
    """The server (not started yet), its listen port and a second free port."""
    port, port2 = free_port(), free_port()
    (tmp_path / "dispatcher.list").write_text(list_text.format(port=port, port2=port2))
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.format(fork="yes" if fork else "no", children=children, port=port,
                              list=tmp_path / "dispatcher.list",
                              listens=listens.format(port=port, port2=port2),
                              extra=extra.format(port=port, port2=port2)))
    return KemiProcess(cfg, tmp_path), port, port2  # started by its with block


@pytest.mark.parametrize("children", [1, 2])
def test_keepalives_leave_from_the_listen_port_and_follow_the_answers(
        tmp_path: Path, answerers: list[Answerer], children: int) -> None:
    a, b = answerers
    srv, port, _ = server(tmp_path, children, f"1 sip:127.0.0.1:{a.port} 0 0\n"
                                             f"1 sip:127.0.0.1:{b.port} 0 0\n")
    with srv:
        until(srv, answerers, {a.port: "AP", b.port: "AP"})
        for who in answerers:
            src, msg = who.got[0]
            assert src == ("127.0.0.1", port)
            assert (msg.via.host, msg.via.port) == ("127.0.0.1", port)
            assert msg.method == "OPTIONS" and msg.ruri == f"sip:127.0.0.1:{who.port}"
        b.status = None  # silent: down once fr_timer passes unanswered
        until(srv, answerers, {a.port: "AP", b.port: "IP"})
        b.status = 200  # answering again: up at its next keepalive
        until(srv, answerers, {a.port: "AP", b.port: "AP"})
        b.status = 503  # an answer that is not accepted: down at once
        until(srv, answerers, {a.port: "AP", b.port: "IP"})
        assert {src for who in answerers for src, _ in who.got} == {("127.0.0.1", port)}
        assert "keepalive 503" in srv.log()


def test_ds_default_socket_and_the_socket_attribute_choose_the_socket(
        tmp_path: Path, answerers: list[Answerer]) -> None:
    a, b = answerers
    srv, port, port2 = server(
        tmp_path, 2,
        f"1 sip:127.0.0.1:{a.port} 0 0\n1 sip:127.0.0.1:{b.port} 0 0 socket=udp:127.0.0.1:{{port}}\n",
        listens="listen=udp:127.0.0.1:{port2}",
        extra='modparam("dispatcher", "ds_default_socket", "udp:127.0.0.1:{port2}")')
    with srv:
        until(srv, answerers, {a.port: "AP", b.port: "AP"})
        assert {src for src, _ in a.got} == {("127.0.0.1", port2)}
        assert {(m.via.host, m.via.port) for _, m in a.got} == {("127.0.0.1", port2)}
        assert {src for src, _ in b.got} == {("127.0.0.1", port)}
        assert {(m.via.host, m.via.port) for _, m in b.got} == {("127.0.0.1", port)}
        # requests relayed to them leave from the same sockets (round-robin: one each)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller:
            caller.bind(("127.0.0.1", 0))
            for n in range(2):
                caller.sendto(message(n, caller.getsockname()[1], port), ("127.0.0.1", port))

            def relayed() -> dict[int, set[int]]:
                for who in answerers:
                    who.serve()
                seen = {who.port: {src[1] for src, m in who.got if m.method == "MESSAGE"}
                        for who in answerers}
                return seen if all(seen.values()) else {}

            seen = wait_until(relayed, 10.0, "a MESSAGE relayed to each destination")
        assert seen == {a.port: {port2}, b.port: {port}}


class TcpAnswerer:
    """A destination over TCP (TLS with ``tls``) on 127.0.0.1: accepts connections, answers
    each keepalive on the connection it came on (a 200)."""

    def __init__(self, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", port))
        self.server.listen(8)
        self.server.settimeout(0.02)
        self.port = self.server.getsockname()[1]
        self.conns: list[tuple[socket.socket, bytearray]] = []
        #: (the connection's peer address, request) of each keepalive read
        self.got: list[tuple[tuple[str, int], SipMsg]] = []

    def serve(self) -> None:
        try:
            conn, _ = self.server.accept()
            if self.tls is not None:
                conn.settimeout(5.0)  # the handshake, blocking
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.settimeout(0.02)
            self.conns.append((conn, bytearray()))
        except (TimeoutError, OSError):
            pass
        for conn, buf in self.conns:
            try:
                buf += conn.recv(65535)
            except (TimeoutError, ssl.SSLWantReadError, OSError):
                continue
            while b"\r\n\r\n" in buf:  # (keepalives have no body)
                end = buf.index(b"\r\n\r\n") + 4
                msg = parse_datagram(bytes(buf[:end]))
                del buf[:end]
                self.got.append((conn.getpeername(), msg))
                conn.sendall(reply(msg, 200))

    def close(self) -> None:
        for conn, _ in self.conns:
            conn.close()
        self.conns.clear()
        self.server.close()


@pytest.mark.parametrize("fork", [True, False])
def test_a_tcp_destination_is_probed_over_tcp(tmp_path: Path, fork: bool) -> None:
    """As Kamailio: over a TCP connection (a worker's, forked), its Via naming the TCP listen
    socket; down when the connection is refused, up when it is answered again."""
    dest = TcpAnswerer()
    try:
        srv, port, _ = server(tmp_path, 2, f"1 sip:127.0.0.1:{dest.port};transport=tcp 0 0\n",
                             listens="listen=tcp:127.0.0.1:{port}", fork=fork)
        with srv:
            until_state(srv, dest, "AP")
            _, msg = dest.got[0]
            assert (msg.via.transport, msg.via.host, msg.via.port) == ("TCP", "127.0.0.1", port)
            assert msg.method == "OPTIONS"
            assert msg.ruri == f"sip:127.0.0.1:{dest.port};transport=tcp"
            dest.close()  # refused: down once fr_timer passes
            until_state(srv, dest, "IP")
            dest = TcpAnswerer(dest.port)
            until_state(srv, dest, "AP")
    finally:
        dest.close()


def until_state(srv: KemiProcess, dest: TcpAnswerer, want: str) -> None:
    """Serve ``dest`` until the list's only destination has the state letters ``want``."""
    def state() -> str:
        [rec] = srv.rpc("dispatcher.list")["RECORDS"]["SET"]
        [found] = rec["TARGETS"]["DEST"]
        return str(found["FLAGS"])

    def reached() -> bool:
        dest.serve()
        return state() == want

    wait_until(reached, 10.0, lambda: f"{state()}, not {want}: {srv.log()[-2000:]}")


TLS_CFG = """[server:default]
method = TLSv1.2+
certificate = {cert}
private_key = {key}

[client:default]
method = TLSv1.2+
verify_certificate = no
"""


def test_a_tls_destination_is_probed_over_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    (tmp_path / "tls.cfg").write_text(TLS_CFG.format(cert=pki.server_cert, key=pki.server_key))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    dest = TcpAnswerer(tls=ctx)
    try:
        srv, port, _ = server(
            tmp_path, 2, f"1 sip:127.0.0.1:{dest.port};transport=tls 0 0\n",
            listens="enable_tls=yes\nlisten=tls:127.0.0.1:{port}\nloadmodule \"tls.so\"",
            extra=f'modparam("tls", "config", "{tmp_path / "tls.cfg"}")')
        with srv:
            until_state(srv, dest, "AP")
            _, msg = dest.got[0]
            assert (msg.via.transport, msg.via.host, msg.via.port) == ("TLS", "127.0.0.1", port)
    finally:
        dest.close()


def message(n: int, me: int, port: int) -> bytes:
    return (f"MESSAGE sip:bob@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bKmsg{n}\r\n"
            f"From: <sip:alice@127.0.0.1>;tag=m{n}\r\nTo: <sip:bob@127.0.0.1>\r\n"
            f"Call-ID: msg-{n}\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n").encode()


SIDE = cfg_preamble("tm", "sl", "pv", "dispatcher") + """\
listen=udp:127.0.0.1:{port2}
modparam("dispatcher", "list_file", "{dir}/dispatcher.list")
modparam("dispatcher", "ds_ping_interval", 1)
modparam("dispatcher", "ds_probing_mode", 1)
request_route {
  sl_send_reply("404", "Not Here");
}
"""


@pytest.mark.skipif(not kamailio_available("tm.so", "sl.so", "pv.so", "dispatcher.so", "ctl.so"),
                    reason="Kamailio 5.6 is not installed")
def test_the_keepalive_is_kamailios(tmp_path: Path, answerers: list[Answerer]) -> None:
    """One answerer for both servers: each server's keepalives, told apart by their source.
    Both listen on two loopback ports: Kamailio's default socket is then the last one."""
    dest = answerers[0]
    files = {"dispatcher.list": f"1 sip:127.0.0.1:{dest.port} 0 0\n"}
    with side_by_side(SIDE, tmp_path, files=files) as pair:
        ports = {who: listen_ports(tmp_path / who / "kamailio.cfg")[-1]
                 for who in ("kemi", "kamailio")}
        assert listen_ports(tmp_path / "kemi" / "kamailio.cfg")[0] == pair.kemi_port

        def both_seen() -> bool:
            dest.serve()
            return {src[1] for src, _ in dest.got} >= set(ports.values())

        wait_until(both_seen, 10.0, "a keepalive from each server")
    shapes: dict[str, dict[str, object]] = {}
    for who, port in ports.items():
        msg = next(m for src, m in dest.got if src == ("127.0.0.1", port))
        via = msg.via
        assert (via.host, via.port) == ("127.0.0.1", port), who  # the listen socket's
        shapes[who] = {
            "request line": (msg.method, msg.ruri),
            "via": (via.transport, (via.branch or "").startswith("z9hG4bK")),
            "from": (msg.from_.uri_text, bool(msg.from_.tag)),
            "to": (msg.to.uri_text, msg.to.tag),
            "cseq": msg.header("CSeq"),
            "max-forwards": msg.header("Max-Forwards"),
        }
    assert shapes["kemi"] == shapes["kamailio"]


def listen_ports(cfg: Path) -> list[int]:
    return [int(line.rsplit(":", 1)[1]) for line in cfg.read_text().splitlines()
            if line.startswith("listen=udp:")]
