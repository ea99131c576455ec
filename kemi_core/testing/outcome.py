"""What one step of a test router caused: messages put on the wire (sorted the way a script
author thinks of them), log lines, script failures, and the routed message's final state."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from kemi_core.sip import SipMsg, SipParseError, parse_datagram

if TYPE_CHECKING:
    from kemi_core.runtime.context import MsgContext


def dest_text(proto: str, host: str, port: int) -> str:
    """``"udp:127.0.0.1:5080"`` (IPv6 hosts in brackets)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{proto}:{host}:{port}"


@attrs.define(eq=False)
class SentMessage:
    """One message the router put on the wire: where to (``dest``, ``proto``/``host``/``port``),
    from which local socket (``local``), the bytes and the parsed ``msg``."""

    proto: str
    host: str
    port: int
    data: bytes
    local: tuple[str, int] | None
    msg: SipMsg

    @property
    def dest(self) -> str:
        return dest_text(self.proto, self.host, self.port)

    def __repr__(self) -> str:
        return f"<SentMessage {self.msg.first_line!r} to {self.dest}>"


class LogLines(list[str]):
    """The log lines of a step, as text, one per item. ``"relaying" in out.logs`` is true when a
    line contains that text (not only when a whole line equals it); ``str(out.logs)`` (or
    ``out.logs.text``) is every line joined with newlines."""

    def __contains__(self, text: object) -> bool:
        if not isinstance(text, str):
            return False
        text = text.rstrip("\r\n")
        return any(text in line for line in self)

    @property
    def text(self) -> str:
        return "\n".join(self)

    def __str__(self) -> str:
        return self.text

    def splitlines(self) -> list[str]:
        return list(self)


@attrs.define(eq=False)
class Outcome:
    """Everything one ``request``/``reply``/``advance`` caused.

    * ``replies``: responses sent back toward the source (``SipMsg``, with ``.status`` and
      ``.reason``), in order; ``final``: the last one with a final status (or None).
    * ``forwarded``: requests sent on to a next hop (``SentMessage``: ``.dest``
      ``"proto:host:port"`` and ``.msg``); tm's own messages are apart: ``acks`` (hop-by-hop
      ACKs of negative finals), ``cancels`` (CANCELs of its branches), and ``retransmissions``
      (timers resending a message, byte for byte, to the same place, during ``advance``).
    * ``sent``: all of it, in wire order.
    * ``logs``: the log lines written (script and modules, at the config's ``debug`` level);
      ``records``: the same as ``logging.LogRecord``; ``trace``: cfgtrace's lines (debugger module).
    * ``errors``: script failures (file:line, traceback); the test fails on them unless the
      router was made with ``fail_on_script_error=False``.
    * ``dropped``: the script dropped the message (``drop``/``KSR.x.drop()``); ``ctx``: the routed
      message's context after the request or reply route, ``pv(spec)`` reads a pseudo-variable
      on it (``out.pv("$du")``, ``out.pv("$avp(x)")``).
    """

    sent: list[SentMessage] = attrs.Factory(list)
    replies: list[SipMsg] = attrs.Factory(list)
    forwarded: list[SentMessage] = attrs.Factory(list)
    acks: list[SentMessage] = attrs.Factory(list)
    cancels: list[SentMessage] = attrs.Factory(list)
    retransmissions: list[SentMessage] = attrs.Factory(list)
    logs: LogLines = attrs.Factory(LogLines)
    records: list[logging.LogRecord] = attrs.Factory(list)
    errors: list[str] = attrs.Factory(list)
    dropped: bool = False
    ctx: MsgContext | None = None

    @property
    def final(self) -> SipMsg | None:
        finals = [r for r in self.replies if r.status >= 200]
        return finals[-1] if finals else None

    @property
    def trace(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.name == "kemi.cfgtrace"]

    def pv(self, spec: str) -> Any:
        """A pseudo-variable's value for the routed message (after its route ran)."""
        if self.ctx is None:
            raise ValueError("this step routed no message (advance): no pseudo-variables to read")
        from kemi_core.pv import get_pv

        return get_pv(self.ctx, spec)

    def __repr__(self) -> str:
        parts = [f"replies={[f'{r.status} {r.reason}' for r in self.replies]}",
                 f"forwarded={[f'{s.msg.method} {s.dest}' for s in self.forwarded]}"]
        for name in ("acks", "cancels", "retransmissions"):
            items = getattr(self, name)
            if items:
                parts.append(f"{name}={len(items)}")
        if self.dropped:
            parts.append("dropped")
        if self.errors:
            parts.append(f"errors={len(self.errors)}")
        return f"<Outcome {' '.join(parts)}>"


class WireSorter:
    """Sorts sends into an Outcome's lists, remembering across steps what was sent before (to
    tell timer retransmissions) and which INVITE branches went out (to tell tm's ACKs and
    CANCELs). What a received message causes is never a retransmission: a test that sends the
    same request twice sees the answer twice in ``replies``."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str, int, bytes]] = set()
        self._invite_branches: set[str] = set()

    def add(self, out: Outcome, sent: SentMessage, timed: bool) -> None:
        """Sort ``sent`` into ``out``; ``timed``: it was sent by a timer (``advance``)."""
        out.sent.append(sent)
        key = (sent.proto, sent.host, sent.port, sent.data)
        if key in self._seen and timed:
            out.retransmissions.append(sent)
            return
        self._seen.add(key)
        msg = sent.msg
        if not msg.is_request:
            out.replies.append(msg)
            return
        branch = _top_branch(msg)
        if msg.method in ("ACK", "CANCEL") and branch in self._invite_branches:
            (out.acks if msg.method == "ACK" else out.cancels).append(sent)
            return
        if msg.method == "INVITE" and branch:
            self._invite_branches.add(branch)
        out.forwarded.append(sent)


def _top_branch(msg: SipMsg) -> str:
    try:
        return msg.via.branch or ""
    except SipParseError:
        return ""


def parse_sent(proto: str, host: str, port: int, data: bytes,
               local: tuple[str, int] | None) -> SentMessage:
    return SentMessage(proto, host, port, bytes(data), local, parse_datagram(bytes(data)))


def fault_text(record: logging.LogRecord) -> str:
    """A script failure's log record as the assertion message shows it: the message (with the
    script's file:line, and Lua's own traceback), then the Python traceback when there is one."""
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
    elif isinstance(exc := getattr(record, "kemi_exception", None), BaseException):
        # logged in one line (no traceback in a server's log); the test shows the traceback
        text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
    return text


def failure_message(errors: Iterable[str], step: str) -> str:
    body = "\n\n".join(errors)
    return f"the routing script failed while {step}:\n\n{body}"
