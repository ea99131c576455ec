"""The edit operations of SipMsg (what KEMI functions do to a message before it is relayed).

Each edit replaces, inserts or deletes whole header lines in the parallel ``_lines`` /
``_names`` lists, marks the message dirty and forgets only the cached typed values of the
header it touched, so a proxy that prepends a Via keeps its parsed From/To/CSeq.
"""

from __future__ import annotations

import difflib
from typing import Any

from kemi_core.sip.errors import SipParseError
from kemi_core.sip.headers import parse_via
from kemi_core.sip.syntax import PURE_PYTHON, TOKEN_CHARS, header_key, line_value, split_commas
from kemi_core.sip.values import Via

# The usual spelling's lines, made once: set_max_forwards runs on every relayed request.
_MF_LINES = [f"Max-Forwards: {n}\r" for n in range(256)]


def message_bytes_py(lines: list[str], body: bytes, at: int = 0, drop: int = 0,
                     insert: list[str] | tuple[str, ...] = ()) -> bytes:
    """The bytes of a message whose head is ``lines`` with ``drop`` lines at ``at`` replaced by
    ``insert`` (0 <= at <= at + drop <= len(lines)). kemi_core/sip/_fast.c has the compiled
    form (message_bytes), used when built: it makes the bytes in one pass, without the list,
    the joined str and its encoding made here (every message sent on is serialised)."""
    if not 0 <= at <= at + drop <= len(lines):
        raise IndexError("message_bytes: at/drop outside the lines")
    head = "\n".join([*lines[:at], *insert, *lines[at + drop:]])
    return b"".join((head.encode("utf-8", "surrogateescape"), b"\n\r\n", body))


try:
    if PURE_PYTHON:
        raise ImportError("KEMI_SIP_PURE is set")
    from kemi_core.sip._fast import message_bytes
except ImportError:
    message_bytes = message_bytes_py


def _clean(text: str, what: str) -> str:
    if "\r" in text or "\n" in text:
        raise ValueError(f"CR/LF not allowed in {what}")
    return text


def _first_value_span(line: str) -> tuple[int, int]:
    """(start, end) of the first value of a header line ("Name: value, value\r"): after the
    colon and its blanks, up to the first comma outside quotes, blanks before it left out."""
    start = line.find(":") + 1
    n = len(line)
    while start < n and line[start] in " \t":
        start += 1
    end = start
    quoted = False
    while end < n:
        ch = line[end]
        if quoted:
            if ch == "\\":
                end += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in ",\r\n":
            break
        end += 1
    while end > start and line[end - 1] in " \t":
        end -= 1
    return start, end


def _stamped_line(line: str, value: str) -> str:
    """The top Via line with its first value replaced by ``value``: as Kamailio edits a Via in
    place, the line's name as written and its other values stay."""
    start, end = _first_value_span(line)
    return f"{line[:start]}{value}{line[end:]}"


#: The cache key of how many lines insert_header put before the message's first header (not a
#: header name: it has a blank). Kamailio adds such lines in the order of the calls, all above
#: the header that came first.
FRONT = " front"
#: The cache key of the lines the script added (id -> the line itself, which keeps the id taken):
#: Kamailio adds every line at an offset of the message as it came, so two lines added at one
#: place (after From, or before the header that follows it) appear in the order of the calls.
ADDED = " added"


class AddedLines(dict[int, str]):
    """The ``ADDED`` marks: id -> line (the line kept, so its id stays taken). Its repr names
    the lines only: ids differ from run to run (tests compare caches by repr)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"AddedLines({list(self.values())!r})"


class EditsMixin:
    """Edit operations, and the slots of the message state SipMsg reads."""

    __slots__ = (
        "is_request", "_method", "_ruri", "status", "reason", "version",
        "_lines", "_names", "_body", "_buf", "_cache",
    )  # fmt: skip
    _lines: list[str]
    _names: list[str]
    _cache: dict[str, Any]
    _buf: bytes | None
    _body: bytes
    _method: str
    _ruri: str
    is_request: bool
    status: int
    reason: str
    version: str

    def _forget(self, key: str) -> None:
        c = self._cache
        if c:
            c.pop(key, None)
            if key == "via":
                c.pop("vias", None)

    def set_ruri(self, uri: str) -> None:
        """Rewrite the Request-URI (KSR.setruri / $ru)."""
        if not self.is_request:
            raise ValueError("a reply has no Request-URI")
        uri = _clean(uri.strip(), "Request-URI")
        if not uri or " " in uri or "\t" in uri:
            raise ValueError(f"invalid Request-URI {uri!r}")
        self._lines[0] = f"{self._method} {uri} {self.version}\r"
        self._ruri = uri
        self._buf = None
        self._cache.pop("uri", None)

    def set_status(self, status: int, reason: str) -> None:
        """Rewrite a reply's status line (sl_forward_reply with a new code and reason)."""
        if self.is_request:
            raise ValueError("a request has no status")
        if not 100 <= status <= 699:
            raise ValueError(f"invalid status {status}")
        reason = _clean(reason, "a reason phrase")
        self._lines[0] = f"{self.version} {status} {reason}\r"
        self.status = status
        self.reason = reason
        self._buf = None

    def _insert(self, i: int, name: str, value: str, added: bool = False) -> None:
        if not name or not TOKEN_CHARS.issuperset(name):
            raise ValueError(f"invalid header name {name!r}")
        key = header_key(name)
        self._names.insert(i, key)
        self._lines.insert(i, line := f"{name}: {_clean(value, 'a header value')}\r")
        self._buf = None
        self._forget(key)
        if added:
            marks = self._cache.get(ADDED)
            if marks is None:  # (not setdefault: no empty AddedLines made per added line)
                marks = self._cache[ADDED] = AddedLines()
            marks[id(line)] = line

    def _is_added(self, i: int) -> bool:
        """Whether line ``i`` is one the script added (not one the message came with)."""
        line = self._lines[i]
        added = self._cache.get(ADDED)
        return added is not None and added.get(id(line)) is line

    def append_header(self, name: str, value: str) -> None:
        """Add a header after the last one."""
        self._insert(len(self._names), name, value, added=True)

    def insert_header(self, name: str, value: str) -> None:
        """Add a header before the message's first header, below those added there already
        (Kamailio's insert_hf, Record-Route, a Max-Forwards added: in the order of the calls)."""
        front = self._cache.get(FRONT, 0)
        self._insert(1 + front, name, value, added=True)
        self._cache[FRONT] = front + 1

    def insert_header_at_front(self, name: str, value: str, rank: int) -> None:
        """Add a header as the ``rank``-th of the lines insert_header added (0: above them all):
        rr's Record-Route, made when the request is sent, goes where record_route() was called."""
        front = self._cache.get(FRONT, 0)
        self._insert(1 + min(rank, front), name, value)
        self._cache[FRONT] = front + 1

    def insert_first_header(self, name: str, value: str) -> None:
        """Add a header as the message's first own header: below the lines insert_header
        added, not counted with them (a header of the message put back where it was)."""
        self._insert(1 + self._cache.get(FRONT, 0), name, value)

    def front_count(self) -> int:
        """How many lines insert_header added before the message's first header."""
        return self._cache.get(FRONT, 0)  # type: ignore[no-any-return]

    def keep_front_of(self, old: EditsMixin) -> None:
        """This message is ``old``'s text rewritten and parsed again (textops' whole-text
        edits): keep count of the lines insert_header added at the top, so that the next ones
        still go below them, as Kamailio's do (its text edits leave added lines where they are).
        The count follows the edit: a line of that block removed or changed in place, or a line
        put in at its lower edge (right above the first header the message came with), counts
        as in the block, as ``add_header_before`` counts one (see there)."""
        front = old.front_count()
        marks = old._cache.get(ADDED)
        if not front and not marks:
            return
        kept = 0
        before, after = old._lines[1:], self._lines[1:]
        ops = difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes()
        if marks:  # the added lines the edit left as they were stay added
            self._cache[ADDED] = AddedLines(
                (id(new), new) for tag, i1, i2, j1, j2 in ops if tag == "equal"
                for old_line, new in zip(before[i1:i2], after[j1:j2], strict=True)
                if marks.get(id(old_line)) is old_line)
        if not front:
            return
        for tag, i1, i2, j1, j2 in ops:
            if i2 <= front:  # wholly in the block (an insertion at its lower edge too)
                kept += j2 - j1
            elif i1 < front:  # across its lower edge: what replaces the part above it
                kept += front - i1 if tag == "equal" else min(j2 - j1, front - i1)
        self._cache[FRONT] = min(kept, len(after))

    def add_header_after(self, anchor: str, name: str, value: str,
                         added: bool = False) -> bool:
        """Add a header after the first ``anchor`` header; False when there is none.

        ``added``: a line the script adds (append_hf or KSR.hdr.append_after with a header
        name): it goes below the lines the script added after that header before (or before
        the header that follows it), in the order of the calls, as Kamailio 5.6 adds them."""
        akey = header_key(anchor)
        names = self._names
        if akey not in names:
            return False
        i = names.index(akey) + 1
        if added:
            n = len(names)
            while i < n and self._is_added(i):
                i += 1
        self._insert(i, name, value, added)
        return True

    def add_header_after_last(self, anchor: str, name: str, value: str) -> bool:
        """Add a header after the last ``anchor`` header; False when there is none."""
        akey = header_key(anchor)
        names = self._names
        for i in range(len(names) - 1, -1, -1):
            if names[i] == akey:
                self._insert(i + 1, name, value)
                return True
        return False

    def add_header_before(self, anchor: str, name: str, value: str,
                          added: bool = False) -> bool:
        """Add a header before the first ``anchor`` header; False when there is none.

        ``added``: a line the script adds (insert_hf with a header name), not one of the
        message's own put back. Right above the message's first header (below the lines
        insert_header added) it joins those lines: Kamailio 5.6 adds both at that header's
        start in the order of the calls, so an insert_header after this goes below it."""
        akey = header_key(anchor)
        names = self._names
        if akey not in names:
            return False
        i = names.index(akey)
        self._insert(i, name, value, added)
        if added:
            front = self._cache.get(FRONT, 0)
            if i == 1 + front:
                self._cache[FRONT] = front + 1
        return True

    def remove_header(self, name: str) -> int:
        """Remove every line of that name; returns how many."""
        key = header_key(name)
        names = self._names
        count = names.count(key)
        if not count:
            return 0
        front = self._cache.get(FRONT, 0)
        if count == 1:  # the usual case: found in C, no scan in Python
            i = names.index(key)
            del names[i]
            del self._lines[i]
            if i <= front:
                self._cache[FRONT] = front - 1
        else:
            for i in reversed([i for i, n in enumerate(names) if n == key]):
                del names[i]
                del self._lines[i]
                if i <= front:
                    front -= 1
                    self._cache[FRONT] = front
        self._buf = None
        self._forget(key)
        return count

    def prepend_via(self, value: str) -> None:
        """Add a Via line above the top-most one."""
        if "\r" in value or "\n" in value:
            raise ValueError("CR/LF not allowed in a Via")
        names = self._names
        try:
            i = names.index("via")
        except ValueError:
            i = 1
        names.insert(i, "via")
        self._lines.insert(i, f"Via: {value}\r")
        self._buf = None
        c = self._cache
        if "via" in c or "vias" in c:
            c.pop("via", None)
            c.pop("vias", None)

    def pop_via(self) -> Via | None:
        """Remove the top Via value (only that one of a comma list); None when there is none.

        Raises SipParseError when the removed value is malformed (it is still removed)."""
        names = self._names
        if "via" not in names:
            return None
        i = names.index("via")
        line = self._lines[i]
        values = split_commas(line_value(line), strict=False)
        if len(values) <= 1:
            del names[i]
            del self._lines[i]
        else:
            self._lines[i] = f"{line[: line.find(':')]}: {', '.join(values[1:])}\r"
        self._buf = None
        c = self._cache
        vias = c.pop("vias", None)
        top = c.pop("via", None)
        if vias:
            # The remaining values are the ones parsed already: no need to parse them again.
            top = vias[0]
            c["vias"] = rest = vias[1:]
            if rest:
                c["via"] = rest[0]
        if top is not None:
            return top  # type: ignore[no-any-return]
        if not values:
            raise SipParseError(400, "Empty Via")
        return parse_via(values[0])

    def replace_top_via(self, value: str) -> None:
        """Replace the top Via value by ``value`` where it is (a request's Via with ;received
        or ;rport= on a copy sent on): Kamailio edits that Via in place, so the line keeps its
        place, its name as written ("v:") and the line's other values."""
        if "\r" in value or "\n" in value:
            raise ValueError("CR/LF not allowed in a Via")
        names = self._names
        if "via" not in names:
            self.prepend_via(value)
            return
        i = names.index("via")
        self._lines[i] = _stamped_line(self._lines[i], value)
        self._buf = None
        c = self._cache
        c.pop("via", None)
        c.pop("vias", None)

    def bytes_without_top_via(self) -> bytes:
        """The bytes ``pop_via()`` then ``to_bytes()`` would give, the message left as it is
        (a proxy relaying a reply keeps the reply it got)."""
        names = self._names
        if "via" not in names:
            return self.to_bytes()  # type: ignore[attr-defined, no-any-return]
        i = names.index("via")
        lines = self._lines
        line = lines[i]
        if "," in line:
            values = split_commas(line_value(line), strict=False)
            if len(values) > 1:  # the line stays with the other values
                rest = f"{line[: line.find(':')]}: {', '.join(values[1:])}\r"
                return message_bytes(lines, self._body, i, 1, (rest,))
        return message_bytes(lines, self._body, i, 1, ())

    def bytes_with_via(self, ours: str, top: str | None = None) -> bytes:
        """The bytes a copy of this request would give after ``replace_top_via(top)`` (when
        ``top`` is given) and ``prepend_via(ours)``, the message left as it is: a stateless
        forward and tm's branches send these without making the copy."""
        if "\r" in ours or "\n" in ours:
            raise ValueError("CR/LF not allowed in a Via")
        names = self._names
        lines = self._lines
        if "via" not in names:
            if top is None:
                return message_bytes(lines, self._body, 1, 0, (f"Via: {ours}\r",))
            out = self.copy()  # type: ignore[attr-defined]
            out.replace_top_via(top)
            out.prepend_via(ours)
            return out.to_bytes()  # type: ignore[no-any-return]
        i = names.index("via")
        if top is None:
            return message_bytes(lines, self._body, i, 0, (f"Via: {ours}\r",))
        if "\r" in top or "\n" in top:
            raise ValueError("CR/LF not allowed in a Via")
        return message_bytes(lines, self._body, i, 1,
                             (f"Via: {ours}\r", _stamped_line(lines[i], top)))

    def _set_value(self, key: str, name: str, value: str) -> None:
        """Replace the value of the first ``key`` line (keeping its name as written) or
        append the header."""
        names = self._names
        try:
            i = names.index(key)
        except ValueError:
            self._insert(len(names), name, value)
            return
        head, _, _ = self._lines[i].partition(":")
        self._lines[i] = f"{head}: {value}\r"
        self._buf = None
        self._forget(key)

    def set_header_value(self, name: str, value: str, nth: int = 0) -> bool:
        """Replace the whole value of the ``nth`` line named ``name`` (its name kept as
        written, its place kept); False when there is no such line."""
        key = header_key(name)
        if nth == 0:  # the usual case: found in C, no scan in Python
            try:
                i = self._names.index(key)
            except ValueError:
                return False
        else:
            idx = [i for i, n in enumerate(self._names) if n == key]
            if nth >= len(idx):
                return False
            i = idx[nth]
        head, _, _ = self._lines[i].partition(":")
        self._lines[i] = f"{head}: {_clean(value, 'a header value')}\r"
        self._buf = None
        self._forget(key)
        return True

    def set_max_forwards(self, n: int) -> None:
        """Set Max-Forwards (0..255), adding the header when missing."""
        if not 0 <= n <= 255:
            raise ValueError("Max-Forwards must be 0..255")
        try:
            i = self._names.index("max-forwards")
        except ValueError:
            self.insert_header("Max-Forwards", str(n))  # Kamailio: above the first header
        else:
            # Keep the name as written; only the value changes.
            line = self._lines[i]
            if line.startswith("Max-Forwards:"):
                self._lines[i] = _MF_LINES[n]
            else:
                self._lines[i] = f"{line.partition(':')[0]}: {n}\r"
            self._buf = None
        self._cache["max-forwards"] = n

    def set_body(self, body: bytes, content_type: str | None = None) -> None:
        """Replace the body; Content-Length follows, Content-Type is set when given (and
        removed when the new body is empty and no type is given)."""
        self._body = bytes(body)
        self._set_value("content-length", "Content-Length", str(len(body)))
        if content_type is not None:
            self._set_value("content-type", "Content-Type", _clean(content_type, "Content-Type"))
        elif not body:
            self.remove_header("content-type")
        self._buf = None
