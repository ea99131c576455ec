"""The rtpproxy control protocol, sans-IO: commands as text, replies parsed.

One command, one reply. Over UDP every command starts with a cookie the reply repeats (so
retransmissions and late replies can be told apart); over a unix stream socket there is no
cookie and the proxy closes the connection after its reply. Commands used here:

- ``V`` (protocol version, ``20040107``) and ``VF <date>`` (is that capability there: 1 or 0);
- ``U[mods] callid addr port from_tag[;n] [to_tag[;n]]``: create or update the session of media
  stream n (an offer); ``L[mods] ...`` looks it up (an answer). The reply is
  ``port [addr [family]]`` or ``E<code>``;
- ``D callid from_tag [to_tag]``: delete the session; ``Q callid from_tag to_tag``: its
  statistics; ``R``, ``P``, ``S``: recording and announcements.
"""

from __future__ import annotations

import attrs

#: The base protocol version every proxy answers to ``V``.
BASE_VERSION = "20040107"
#: Capabilities asked with ``VF`` (what each one enables here).
CAP_REPACKETIZE = "20071116"  # Z<ms> modifier
CAP_CODECS = "20081102"  # c<payload list> modifier
CAPABILITIES = ("20050322", CAP_REPACKETIZE, CAP_CODECS)


class ProtocolError(ValueError):
    """A reply that is not what the command expects (already worded for the log)."""


@attrs.frozen
class SessionReply:
    """The answer to U/L: the proxy's port for the stream and, when given, its address."""

    port: int
    address: str | None = None
    family: str | None = None  # "4" or "6" as rtpengine sends it


def with_cookie(cookie: str, command: str) -> bytes:
    return f"{cookie} {command}".encode()


def split_cookie(data: bytes) -> tuple[str, str]:
    """(cookie, reply text) of a UDP reply."""
    text = data.decode("utf-8", "replace").strip()
    cookie, _, rest = text.partition(" ")
    return cookie, rest.strip()


def error_code(text: str) -> int | None:
    """The code of an ``E<n>`` reply, else None."""
    if text.startswith("E"):
        digits = text[1:].split()[0] if text[1:].split() else ""
        return int(digits) if digits.isdigit() else 0
    return None


def parse_session(text: str) -> SessionReply:
    """The reply to U or L; ProtocolError for ``E<n>`` and for anything unreadable."""
    code = error_code(text)
    if code is not None:
        raise ProtocolError(f"rtp proxy returned error E{code}")
    parts = text.split()
    if not parts or not parts[0].isdigit():
        raise ProtocolError(f"bad reply from rtp proxy: {text!r}")
    port = int(parts[0])
    if not 0 <= port <= 65535:
        raise ProtocolError(f"bad port in reply from rtp proxy: {text!r}")
    return SessionReply(port, parts[1] if len(parts) > 1 else None,
                        parts[2] if len(parts) > 2 else None)


def tag(value: str, medianum: int | None) -> str:
    return value if medianum is None else f"{value};{medianum}"


def session_command(create: bool, modifiers: str, callid: str, address: str, port: int,
                    from_tag: str, to_tag: str | None, medianum: int) -> str:
    """U (create) or L (lookup) for media stream ``medianum`` (1-based)."""
    head = ("U" if create else "L") + modifiers
    out = f"{head} {callid} {address} {port} {tag(from_tag, medianum)}"
    if to_tag:
        out += f" {tag(to_tag, medianum)}"
    return out


def delete_command(callid: str, from_tag: str, to_tag: str | None) -> str:
    return f"D {callid} {from_tag} {to_tag}" if to_tag else f"D {callid} {from_tag}"


def query_command(callid: str, from_tag: str, to_tag: str | None) -> str:
    return f"Q {callid} {from_tag} {to_tag}" if to_tag else f"Q {callid} {from_tag}"


def record_command(callid: str, from_tag: str, to_tag: str | None) -> str:
    return f"R {callid} {from_tag} {to_tag}" if to_tag else f"R {callid} {from_tag}"


def play_command(callid: str, prompt: str, count: int, from_tag: str, to_tag: str | None) -> str:
    """P: stream a prompt ``count`` times (-1: until stopped) to the party of ``from_tag``."""
    head = "P" if count == 1 else f"P{count}"
    tail = f" {to_tag}" if to_tag else ""
    return f"{head} {callid} {prompt} session {from_tag}{tail}"


def stop_play_command(callid: str, from_tag: str, to_tag: str | None) -> str:
    return f"S {callid} {from_tag} {to_tag}" if to_tag else f"S {callid} {from_tag}"
