"""ndb_redis's sans-IO parts: server specs, command words, reply keys."""

from __future__ import annotations

import pytest

from kemi_ndb_redis import build_args
from kemi_ndb_redis.connection import ServerSpec, ServerSpecError, parse_server
from kemi_ndb_redis.replies import ARRAY, INTEGER, NIL, STATUS, Reply, Status, lookup, parse_path


def test_server_spec() -> None:
    assert parse_server("name=srvN;addr=127.0.0.2;port=6380;db=1;pass=pw") == ServerSpec(
        "srvN", "127.0.0.2", 6380, "", 1, "pw")
    assert parse_server("name=s;unix=/tmp/r.sock").where == "/tmp/r.sock"
    with pytest.raises(ServerSpecError):
        parse_server("addr=127.0.0.1")
    with pytest.raises(ServerSpecError):
        parse_server("name=s;colour=red")


def test_command_words_and_placeholders() -> None:
    assert build_args("SET ruri sip:a@b", []) == ["SET", "ruri", "sip:a@b"]
    assert build_args("GET %s", ["foo bar"]) == ["GET", "foo bar"]
    assert build_args("HMGET %s %s %s", ["k", "f1", "f2"]) == ["HMGET", "k", "f1", "f2"]
    assert build_args("INCR calls:%s 100%%", ["alice"]) == ["INCR", "calls:alice", "100%"]


def test_reply_keys() -> None:
    raw = [[Status(b"OK"), 3], None, b"x"]
    r = Reply.of(raw)
    assert r.type == ARRAY and r.key("size") == 3 and r.key("value") is None
    name, steps = parse_path("r=>value[0]=>type[1]")
    assert name == "r"
    assert lookup(r, steps) == INTEGER
    assert lookup(r, parse_path("r=>value[0]=>size")[1]) == 2
    assert lookup(r, parse_path("r=>type[1]")[1]) == NIL
    assert lookup(r, parse_path("r=>value[2]")[1]) == "x"
    assert lookup(r, parse_path("r=>value[0]=>info[0]")[1]) == "OK"
    assert Reply.of(Status(b"PONG")).type == STATUS and Reply.of(Status(b"PONG")).key("value") is None
    with pytest.raises(ValueError):
        parse_path("r")
