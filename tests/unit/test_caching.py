"""kemi_core.caching.bounded_cache: a memo of compiled results by text, bounded, errors not kept."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kemi_core.caching import bounded_cache


def test_hits_do_not_compile_again_and_errors_are_not_kept() -> None:
    compiled: list[str] = []

    def compile_text(text: str) -> tuple[str]:
        compiled.append(text)
        if text == "bad":
            raise ValueError("bad text")
        return (text,)

    cached = bounded_cache(compile_text, 3)
    first = cached("a")
    assert cached("a") is first and compiled == ["a"]
    for _ in range(2):
        with pytest.raises(ValueError, match="bad text"):
            cached("bad")
    assert compiled == ["a", "bad", "bad"]


@given(st.lists(st.text(max_size=3), max_size=40), st.integers(min_value=1, max_value=5))
def test_same_answers_as_the_plain_function_and_never_more_than_the_limit(
        texts: list[str], limit: int) -> None:
    calls = 0

    def compile_text(text: str) -> str:
        nonlocal calls
        calls += 1
        return text.upper() + "!"

    cached = bounded_cache(compile_text, limit)
    for text in texts:
        assert cached(text) == text.upper() + "!"
    memo = cached.__self__  # type: ignore[attr-defined]
    assert len(memo) <= limit
    assert calls <= len(texts)
    if len(set(texts)) <= limit:  # never cleared: each text compiled once
        assert calls == len(set(texts))
