"""kemi and Kamailio 5.6 side by side on one kamailio.cfg: the same SIP messages to both, the
replies compared.

``side_by_side(cfg_text, workdir)`` starts ``kemi run`` and ``kamailio`` on free ports of
127.0.0.1, each with its own control socket; ``{port}``, ``{mpath}``, ``{ctl}`` and ``{dir}`` in the
config text are filled per server; ``cfg_preamble(modules)`` writes the usual start of that text. ``exchange(port, messages)`` sends raw requests (``PORT`` in a
message is replaced by the client's own port) and returns what came back, reduced to what a
comparison should look at.
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

from kemi_core.testing.kamailio import KAMAILIO_MPATH, KamailioProcess
from kemi_core.testing.process import KemiProcess, free_port


@attrs.frozen
class Answer:
    """A reply reduced for comparison: status line and the values of chosen headers."""

    status: str
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def code(self) -> int:
        return int(self.status.split()[1]) if self.status.startswith("SIP/2.0 ") else 0


NO_REPLY = Answer("(no reply)")


def reduce_reply(data: bytes, keep: Sequence[str]) -> Answer:
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace").split("\r\n")
    wanted = {k.lower() for k in keep}
    headers = []
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in wanted:
            headers.append((name.strip().lower(), value.strip()))
    return Answer(head[0], tuple(headers))


def exchange(port: int, messages: Sequence[str | bytes], keep: Sequence[str] = (),
             timeout: float = 1.0) -> list[Answer]:
    """Send each message from one UDP socket and wait for its first reply (skipping 100
    Trying); ``(no reply)`` after ``timeout`` seconds."""
    out: list[Answer] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        me = sock.getsockname()[1]
        for m in messages:
            data = m.encode() if isinstance(m, str) else m
            sock.sendto(data.replace(b"PORT", str(me).encode()), ("127.0.0.1", port))
            out.append(_first_reply(sock, keep, timeout))
    return out


def _first_reply(sock: socket.socket, keep: Sequence[str], timeout: float) -> Answer:
    sock.settimeout(timeout)
    while True:
        try:
            data = sock.recv(65535)
        except TimeoutError:
            return NO_REPLY
        if not data.startswith(b"SIP/2.0 100 "):
            return reduce_reply(data, keep)


def request_text(method: str = "OPTIONS", ruri: str = "sip:u@127.0.0.1", extra: str = "",
            body: str = "", cseq: str | None = None, frm: str = "<sip:a@example.com>;tag=1",
            to: str = "<sip:u@127.0.0.1>", call_id: str | None = "sbs-1", via: str | None = None,
            content_length: int | None = None) -> str:
    """A request text for ``exchange`` (its Via names the client's port as ``PORT``)."""
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]  # a new transaction each time
    lines = [f"{method} {ruri} SIP/2.0",
             via or f"Via: SIP/2.0/UDP 127.0.0.1:PORT;branch={branch}",
             f"From: {frm}", f"To: {to}"]
    if call_id is not None:
        lines.append(f"Call-ID: {call_id}")
    lines.append(f"CSeq: {cseq or '1 ' + method}")
    lines.append("Max-Forwards: 70")
    lines += [x for x in extra.split("\r\n") if x]
    lines.append(f"Content-Length: {len(body.encode()) if content_length is None else content_length}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


def cfg_preamble(*modules: str, defines: str = "") -> str:
    """The start of a kamailio.cfg for ``side_by_side``: ``#!KAMAILIO``, then ``defines`` as
    given (lines such as ``#!define X 1``), one worker logging to stderr, listening on
    ``udp:127.0.0.1:{port}``, a ``loadmodule`` for each of ``modules`` in order (``"sl"`` loads
    ``sl.so``), and ctl.so on ``{ctl}`` (how Kamailio is seen ready). Ends with a newline: the
    test adds its own modparams and routes."""
    lines = ["#!KAMAILIO", *defines.splitlines(), "debug=2", "log_stderror=yes", "children=1",
             "auto_aliases=no", "listen=udp:127.0.0.1:{port}", 'mpath="{mpath}"']
    lines += [f'loadmodule "{m}.so"' for m in (*modules, "ctl")]
    lines.append('modparam("ctl", "binrpc", "unix:{ctl}")')
    return "\n".join(lines) + "\n"


@attrs.define
class Pair:
    """The two running servers and their SIP ports."""

    kemi: KemiProcess
    kamailio: KamailioProcess
    kemi_port: int
    kamailio_port: int

    def both(self, messages: Sequence[str | bytes], keep: Sequence[str] = (),
             timeout: float = 1.0) -> tuple[list[Answer], list[Answer]]:
        """(kemi's answers, Kamailio's answers) to the same messages."""
        return (exchange(self.kemi_port, messages, keep, timeout),
                exchange(self.kamailio_port, messages, keep, timeout))


@contextmanager
def side_by_side(cfg_text: str, workdir: Path, files: dict[str, str] | None = None,
                 kemi_args: Sequence[str] = ()) -> Iterator[Pair]:
    """Run the config on kemi and on Kamailio at once. ``files`` are written beside each
    server's config (scripts), with the same placeholders filled (``{port}``, a second free
    port ``{port2}`` for a config that listens twice, ``{port3}`` thrice, ``{mpath}``, ``{ctl}``, ``{dir}``). The config must load
    ctl.so (Kamailio is ready when kamcmd answers on ``{ctl}``)."""
    servers = {}
    for who in ("kemi", "kamailio"):
        d = workdir / who
        d.mkdir(parents=True, exist_ok=True)
        port = free_port()
        ctl = d / ("kemi_ctl" if who == "kemi" else "ctl")  # KemiProcess waits on kemi_ctl
        values = {"port": str(port), "port2": str(free_port()), "port3": str(free_port()),
                  "mpath": KAMAILIO_MPATH,
                  "ctl": str(ctl), "dir": str(d)}
        for name, text in (files or {}).items():
            (d / name).write_text(_fill(text, values))
        cfg = d / "kamailio.cfg"
        cfg.write_text(_fill(cfg_text, values))
        servers[who] = (cfg, d, port)
    kcfg, kdir, kport = servers["kemi"]
    mcfg, mdir, mport = servers["kamailio"]
    kemi = KemiProcess(kcfg, kdir, args=list(kemi_args))
    kam = KamailioProcess(mcfg, mdir, f"unix:{mdir / 'ctl'}")
    kemi.start()
    try:
        kam.start()
        try:
            yield Pair(kemi, kam, kport, mport)
        finally:
            kam.stop()
    finally:
        kemi.stop()


def sent_on(port: int, requests: Callable[[int, int], Iterable[tuple[str, bytes]]]) -> dict[str, str]:
    """What a next hop receives for each request a server on ``port`` relays: ``requests(me,
    up)`` gives (name, raw request) for a client on port ``me`` and a next hop on port ``up``
    (both UDP on 127.0.0.1, made here); each is sent in turn and the datagram the next hop gets
    is kept, the server's own Via branch as ``branch=X`` and the three ports named ME, UP and
    SRV, so that the two servers' texts compare."""
    from kemi_core.testing.udp_client import pending_datagrams

    seen: dict[str, str] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
        for s in (client, upstream):
            s.bind(("127.0.0.1", 0))
            s.settimeout(5)
        me, up = client.getsockname()[1], upstream.getsockname()[1]
        for name, raw in requests(me, up):
            pending_datagrams(upstream)
            client.sendto(raw, ("127.0.0.1", port))
            got = upstream.recv(65535).decode()
            got = re.sub(r"(Via: SIP/2.0/UDP 127.0.0.1:)\d+;branch=[^\r\n]*", r"\1SRV;branch=X",
                         got, count=1)
            for number, label in ((me, "ME"), (up, "UP"), (port, "SRV")):
                got = re.sub(rf"(?<!\d){number}(?!\d)", label, got)
            seen[name] = got
        pending_datagrams(client)  # (what the server answered the client)
    return seen


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text
