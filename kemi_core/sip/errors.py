"""The one exception the SIP layer raises for bad input."""

from __future__ import annotations


class SipParseError(Exception):
    """A message (or one of its header values) is malformed.

    ``status`` is the status code a reply should carry (400, 413, 416, 505 ...) and ``reason``
    a short text fit for the reply's reason phrase or a log line.
    """

    __slots__ = ("status", "reason")

    def __init__(self, status: int = 400, reason: str = "Bad Request") -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    @property
    def status_hint(self) -> int:
        """Alias of ``status`` (the status a reply to the broken message should carry)."""
        return self.status

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"
