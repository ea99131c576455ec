"""The Route header values of a request as one list, edited and written back line by line."""

from __future__ import annotations

from kemi_core.sip import NameAddr, SipMsg, parse_name_addr, split_commas
from kemi_rr.hdrlines import line_values, rewrite_lines

ROUTE = "Route"


class RouteSet:
    """Route values in order; ``commit`` writes the changes back, keeping untouched lines."""

    def __init__(self, msg: SipMsg) -> None:
        self.msg = msg
        self.lines = lines = line_values(msg, ROUTE)
        #: (line index, raw value, parsed) of each value; raises SipParseError when malformed.
        self.items: list[tuple[int, str, NameAddr]]
        if len(lines) == 1 and "," not in (line := lines[0]) and '"' not in line:
            # one line of one entry (the usual in-dialog Route): split_commas' answer
            raw = line.strip()
            self.items = [(0, raw, parse_name_addr(raw))] if raw else []
        else:
            self.items = [(i, raw, parse_name_addr(raw)) for i, line in enumerate(lines)
                          for raw in split_commas(line)]
        self._appended: list[str] = []
        self._changed = False

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> NameAddr:
        return self.items[i][2]

    def pop(self, i: int) -> NameAddr:
        self._changed = True
        return self.items.pop(i)[2]

    def append(self, uri: str) -> None:
        self._changed = True
        self._appended.append(f"<{uri}>")

    def commit(self) -> None:
        if not self._changed:
            return
        if not self.items and not self._appended:
            # every entry went (loose_route took our own: the usual in-dialog Route, one line,
            # or two after a double Record-Route): the lines go, as rewrite_lines would
            # remove them
            self.msg.remove_header(ROUTE)
            self.lines = []
            self._changed = False
            return
        new: list[list[str]] = []
        for i, line in enumerate(self.lines):
            kept = [raw for li, raw, _ in self.items if li == i]
            if kept == split_commas(line):
                new.append([line])  # untouched: exactly as received
            else:
                new.append([", ".join(kept)] if kept else [])
        if not self.lines:
            for value in self._appended:
                self.msg.append_header(ROUTE, value)
        else:
            new[-1].extend(self._appended)
            rewrite_lines(self.msg, ROUTE, new)
        self.lines = line_values(self.msg, ROUTE)
        self.items = [(i, raw, parse_name_addr(raw)) for i, line in enumerate(self.lines)
                      for raw in split_commas(line)]
        self._appended = []
        self._changed = False
