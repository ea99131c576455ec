"""String tests that need no message (Kamailio keeps them in textops for historical reasons)."""

from __future__ import annotations

from kemi_core.api import MsgContext


def cmp_str(ctx: MsgContext, s1: str, s2: str) -> int:
    """Case-sensitive equality."""
    return 1 if s1 == s2 else -1


def cmp_istr(ctx: MsgContext, s1: str, s2: str) -> int:
    """Case-insensitive equality."""
    return 1 if s1.casefold() == s2.casefold() else -1


def starts_with(ctx: MsgContext, s1: str, s2: str) -> int:
    """``s1`` starts with ``s2``."""
    return 1 if s1.startswith(s2) else -1


def ends_with(ctx: MsgContext, s1: str, s2: str) -> int:
    """``s1`` ends with ``s2``."""
    return 1 if s1.endswith(s2) else -1


def str_find(ctx: MsgContext, s1: str, s2: str) -> int:
    """``s2`` occurs in ``s1`` (case-sensitive)."""
    return 1 if s2 in s1 else -1


def str_ifind(ctx: MsgContext, s1: str, s2: str) -> int:
    """Case-insensitive str_find."""
    return 1 if s2.casefold() in s1.casefold() else -1


def _items(lst: str, vsep: str) -> list[str] | None:
    if len(vsep) != 1:
        return None
    return [item.strip() for item in lst.split(vsep)]


def in_list(ctx: MsgContext, subject: str, lst: str, vsep: str) -> int:
    """``subject`` is one of the ``vsep``-separated items of ``lst``."""
    items = _items(lst, vsep)
    return 1 if items is not None and subject in items else -1


def in_list_prefix(ctx: MsgContext, subject: str, lst: str, vsep: str) -> int:
    """Some non-empty item of ``lst`` is a prefix of ``subject``."""
    items = _items(lst, vsep)
    return 1 if items is not None and any(i and subject.startswith(i) for i in items) else -1
