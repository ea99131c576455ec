"""The dispatcher hash: values Kamailio 5.6's ``dispatcher.hash`` RPC gave for the same input."""

from __future__ import annotations

import pytest

from kemi_dispatcher.hashing import ds_hash, uri_key


@pytest.mark.parametrize(("values", "expected"), [
    (("a",), 109),
    (("ab",), 27998),
    (("abc",), 7167810),
    (("abcd",), 1834959896),
    (("abcde",), 1834960001),
    (("call-0",), 1864287597),
    (("call-3",), 1864287596),
    (("alice", "example.com"), 1442294598),
])
def test_hash_matches_kamailio(values: tuple[str, ...], expected: int) -> None:
    assert ds_hash(*values) == expected


@pytest.mark.parametrize(("uri", "key"), [
    ("sip:user0@example.com", ("user0", "example.com")),
    ("sip:user2@example.com:5070", ("user2", "example.com:5070")),
    ("sip:user3@example.com:5060", ("user3", "example.com")),
    ("sips:user6@example.com:5061", ("user6", "example.com")),
    ("sip:example.com", ("", "example.com")),
    ("sip:user5@example.com;transport=tcp", ("user5", "example.com")),
    ("sip:User1@Example.COM", ("User1", "Example.COM")),
])
def test_uri_key(uri: str, key: tuple[str, ...]) -> None:
    assert uri_key(uri) == key
    assert uri_key(uri, user_only=True) == key[:1]
