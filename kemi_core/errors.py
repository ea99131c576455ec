"""Errors that stop start-up or refuse a config, always with a place and a reason."""

from __future__ import annotations


class KemiError(Exception):
    """Base of kemi's own start-up errors."""


class ConfigError(KemiError):
    """A config or script problem, reported as ``file:line: reason``."""

    def __init__(self, reason: str, file: str | None = None, line: int | None = None,
                 column: int | None = None) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.column = column
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        return where + self.reason


class ModuleError(KemiError):
    """A module cannot be found, loaded or initialised."""


class ScriptError(KemiError):
    """A routing script failed to load or check (file:line in the message)."""
