"""Rewrite every line of one header name while keeping each line where it was.

SipMsg edits whole header names (remove_header) or insert near the first header of a name; rr
needs to change single Route / Record-Route lines. So: snapshot, remove every line of the name,
then put the new lines back next to an anchor that pins their old place exactly. When no anchor
is exact they all go to the top of the message: only the relative order of same-name lines
matters in SIP (RFC 3261 7.3.1), and that order is always kept.
"""

from __future__ import annotations

from kemi_core.sip import SipMsg, header_key


def line_values(msg: SipMsg, name: str) -> list[str]:
    """Raw value of every ``name`` line, in order."""
    key = header_key(name)
    keys = msg.header_keys  # canonical keys, parallel to the lines: no name parsed again
    count = keys.count(key)
    if count < 2:  # none or one line (the usual in-dialog Route): found in C
        return [msg.value_at(keys.index(key))] if count else []
    value_at = msg.value_at
    first = keys.index(key)  # the lines before the first of the name are not looked at
    return [value_at(i) for i in range(first, len(keys)) if keys[i] == key]


def rewrite_lines(msg: SipMsg, name: str, new: list[list[str]]) -> None:
    """Line i of ``name`` becomes the lines ``new[i]`` (empty list: deleted)."""
    if not any(new):  # every line goes (loose_route removing our only Route): nothing to place
        msg.remove_header(name)
        return
    key = header_key(name)
    snap = msg.header_keys[1:]  # a copy: the edits below change the message's list
    slots: list[tuple[int, list[str]]] = []  # (non-`name` lines before it, its new lines)
    others = 0
    i = 0
    for k in snap:
        if k != key:
            others += 1
            continue
        lines = new[i] if i < len(new) else []
        i += 1
        if not lines:
            continue
        if slots and slots[-1][0] == others:
            slots[-1][1].extend(lines)
        else:
            slots.append((others, list(lines)))
    rest = [k for k in snap if k != key]
    placements = [_anchor(rest, slot) for slot, _ in slots]
    msg.remove_header(name)
    if any(p is None for p in placements):
        for line in reversed([x for _, lines in slots for x in lines]):
            msg.insert_first_header(name, line)
        return
    for (_slot, lines), place in zip(slots, placements, strict=True):
        assert place is not None
        how, anchor = place
        if how == "top":
            for line in reversed(lines):
                msg.insert_first_header(name, line)
        elif how == "before":
            for line in lines:
                msg.add_header_before(anchor, name, line)
        else:
            for line in reversed(lines):
                msg.add_header_after(anchor, name, line)


def _anchor(rest: list[str], slot: int) -> tuple[str, str] | None:
    """How to put lines back before ``rest[slot]``: only first-of-their-name headers are exact."""
    if slot == 0:
        return ("top", "")
    if slot < len(rest) and rest.index(rest[slot]) == slot:
        return ("before", rest[slot])
    if rest.index(rest[slot - 1]) == slot - 1:
        return ("after", rest[slot - 1])
    return None
