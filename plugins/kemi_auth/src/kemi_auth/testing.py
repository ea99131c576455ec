"""A Digest-authenticating SIP client over UDP for tests and benchmarks (not used by the module).

``DigestUA(port).register()`` sends a REGISTER, answers the 401 with credentials computed
from the challenge, and returns the final reply; ``request(...)`` sends one request with
whatever credentials a test wants (replayed, stale, forged, overlong ...).
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from typing import Any

import attrs

from kemi_auth import digest
from kemi_core.sip import SipMsg, SipParseError, build_reply, parse_datagram

_PARAM = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]+)')


@attrs.frozen
class Challenge:
    realm: str
    nonce: str
    qop: str = ""
    algorithm: str = "MD5"
    stale: bool = False
    opaque: str = ""
    header: str = "WWW-Authenticate"


def parse_challenge(reply: SipMsg) -> Challenge | None:
    """The Digest challenge of a 401/407, None when there is none."""
    for name in ("WWW-Authenticate", "Proxy-Authenticate"):
        value = reply.header(name)
        if value is None or not value.lower().startswith("digest "):
            continue
        params = {k.lower(): v.strip('"') for k, v in _PARAM.findall(value[7:])}
        return Challenge(params.get("realm", ""), params.get("nonce", ""),
                         params.get("qop", ""), params.get("algorithm", "MD5"),
                         params.get("stale", "").lower() == "true", params.get("opaque", ""),
                         name)
    return None


def credentials(ch: Challenge, method: str, uri: str, user: str, password: str,
                nc: int = 1, cnonce: str = "", qop: str | None = None,
                algorithm: str | None = None, body: bytes = b"", response: str = "") -> str:
    """An Authorization value answering ``ch`` (``response`` forces a given one)."""
    alg = digest.canonical_algorithm(algorithm or ch.algorithm) or "MD5"
    qop = (ch.qop.split(",")[0].strip() if ch.qop else "") if qop is None else qop
    cnonce = cnonce or secrets.token_hex(8)
    ncs = f"{nc:08x}"
    h1 = digest.ha1(alg, user, ch.realm, password)
    h2 = digest.ha2(alg, method, uri, qop, body)
    resp = response or digest.response(alg, h1, ch.nonce, h2, qop, ncs, cnonce)
    value = (f'Digest username="{user}", realm="{ch.realm}", nonce="{ch.nonce}", '
             f'uri="{uri}", response="{resp}", algorithm={alg}')
    if qop:
        value += f', qop={qop}, nc={ncs}, cnonce="{cnonce}"'
    if ch.opaque:
        value += f', opaque="{ch.opaque}"'
    return value


class DigestUA:
    """One UDP socket (``src``, any port) talking to kemi or Kamailio on 127.0.0.1:``port``."""

    def __init__(self, port: int, user: str = "alice", password: str = "secret",
                 domain: str = "127.0.0.1", src: str = "127.0.0.1", timeout: float = 3.0) -> None:
        self.port = port
        self.user, self.password, self.domain = user, password, domain
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((src, 0))
        self.src, self.lport = src, int(self.sock.getsockname()[1])
        self.timeout = timeout
        self.cseq = 0
        self.call_id = secrets.token_hex(10)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> DigestUA:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- building and sending -------------------------------------------------------------
    def build(self, method: str, ruri: str | None = None, auth: str | None = None,
              hf: str | None = None, from_user: str | None = None, to_user: str | None = None,
              call_id: str | None = None, extra: str = "", expires: int | None = None,
              contact: str | None = None) -> bytes:
        self.cseq += 1
        ruri = ruri or (f"sip:{self.domain}" if method == "REGISTER" else f"sip:bob@{self.domain}")
        fu = from_user if from_user is not None else self.user
        tu = to_user if to_user is not None else (self.user if method == "REGISTER" else "bob")
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.src}:{self.lport};branch=z9hG4bK{secrets.token_hex(8)};rport",
            f"From: <sip:{fu}@{self.domain}>;tag={secrets.token_hex(4)}",
            f"To: <sip:{tu}@{self.domain}>",
            f"Call-ID: {call_id or self.call_id}",
            f"CSeq: {self.cseq} {method}",
            f"Contact: {contact or f'<sip:{fu}@{self.src}:{self.lport}>'}",
            "Max-Forwards: 70",
            "User-Agent: kemi-auth-test",
        ]
        if expires is not None:
            lines.append(f"Expires: {expires}")
        if auth is not None:
            lines.append(f"{hf or ('Authorization' if method == 'REGISTER' else 'Proxy-Authorization')}: {auth}")
        lines += [x for x in extra.split("\r\n") if x]
        lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", self.port))

    def recv(self, timeout: float | None = None) -> SipMsg | None:
        """The next reply (provisional ones skipped), None after ``timeout``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                return None
            try:
                msg = parse_datagram(data)
            except SipParseError:
                continue
            if not msg.is_request and msg.status >= 200:
                return msg
        return None

    def wait_request(self, method: str, timeout: float | None = None) -> SipMsg | None:
        """The next request of ``method`` sent to this socket (this UA as a callee); it is
        answered 200 OK. None after ``timeout``."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                return None
            try:
                msg = parse_datagram(data)
            except SipParseError:
                continue
            if msg.is_request and msg.method == method:
                self.sock.sendto(build_reply(msg, 200, "OK", to_tag=secrets.token_hex(4)), peer)
                return msg
        return None

    def request(self, method: str, **kw: Any) -> SipMsg | None:
        self.send(self.build(method, **kw))
        return self.recv()

    # ---- the challenge-response dance ----------------------------------------------------
    def authenticated(self, method: str, password: str | None = None, qop: str | None = None,
                      algorithm: str | None = None, **kw: Any) -> tuple[SipMsg | None, str]:
        """Send ``method``, answer its challenge; (final reply, the credentials sent)."""
        first = self.request(method, **kw)
        if first is None or first.status not in (401, 407):
            return first, ""
        ch = parse_challenge(first)
        if ch is None:
            return first, ""
        ruri = str(kw.get("ruri") or "") or (f"sip:{self.domain}" if method == "REGISTER"
                                              else f"sip:bob@{self.domain}")
        auth = credentials(ch, method, ruri, self.user, self.password if password is None
                           else password, qop=qop, algorithm=algorithm)
        hf = "Authorization" if ch.header == "WWW-Authenticate" else "Proxy-Authorization"
        return self.request(method, auth=auth, hf=hf, **kw), auth

    def register(self, password: str | None = None, **kw: Any) -> SipMsg | None:
        return self.authenticated("REGISTER", password=password, **kw)[0]
