"""textops search / replace / subst on real SIP bytes, through the registered exports."""

from __future__ import annotations

from typing import Any

import pytest

import kemi_textops
from kemi_core.api import Core, CoreConfig, MsgContext, RecvInfo
from kemi_core.sip import parse_datagram
from kemi_core.testing import ModuleLoader

SDP = "v=0\r\no=alice 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
INVITE = (
    "INVITE sip:alice@example.com;transport=udp SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n"
    "Max-Forwards: 70\r\n"
    "To: Alice <sip:alice@example.com>\r\n"
    "From: Bob <sip:bob@example.org>;tag=1928301774\r\n"
    "Call-ID: a84b4c76e66710@pc33.example.org\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:bob@10.0.0.1>\r\n"
    "X-Info: data-one\r\n"
    "X-Info: keep\r\n"
    "P-Asserted-Identity: <sip:bob@example.org>\r\n"
    "P-Keep-Me: yes\r\n"
    "Content-Type: application/sdp\r\n"
    f"Content-Length: {len(SDP)}\r\n\r\n{SDP}"
)


@pytest.fixture
def core() -> Core:
    core = Core(CoreConfig())
    ModuleLoader(core, available={}).register("textops", kemi_textops)
    return core


def ctx_of(core: Core, raw: str = INVITE) -> MsgContext:
    return core.new_context(parse_datagram(raw.encode()),
                            RecvInfo("udp", "10.0.0.1", 5060, "127.0.0.1", 5060))


def call(core: Core, ctx: MsgContext, name: str, *args: Any) -> Any:
    exp = core.registry.lookup("textops", name)
    assert exp is not None, name
    return exp.func(ctx, *args)


def reparsed(ctx: MsgContext) -> Any:
    """The message as a next hop would parse it (Content-Length must be right)."""
    return parse_datagram(ctx.msg.to_bytes())


def test_search_whole_message_case_insensitive(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "search", "^invite sip:alice") == 1
    assert call(core, ctx, "search", "m=audio [[:digit:]]+") == 1
    assert call(core, ctx, "search", "^X-Nope:") == -1
    assert call(core, ctx, "search", "([unbalanced") == -1


def test_search_body_and_str(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "search_body", "^c=IN IP4 10\\.0\\.0\\.1") == 1
    assert call(core, ctx, "search_body", "^Call-ID") == -1
    assert call(core, ctx, "search_str", "sip:alice@example.com;transport=tcp", ";transport=tcp") == 1
    assert call(core, ctx, "search_str", "sip:alice@example.com", "transport") == -1


def test_search_append_inserts_after_first_match(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "search_append", "^Max-Forwards: ", "1") == 1
    assert reparsed(ctx).max_forwards == 170
    assert call(core, ctx, "search_append", "^No-Such:", "x") == -1


def test_search_append_body_fixes_content_length(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "search_append_body", "^s=-", " session") == 1
    msg = reparsed(ctx)
    assert b"s=- session\r\n" in msg.body
    assert msg.content_length == len(msg.body)


def test_replace_first_and_all(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "replace", "10\\.0\\.0\\.1", "192.0.2.9") == 1
    text = ctx.msg.to_bytes().decode()
    assert text.count("192.0.2.9") == 1 and "10.0.0.1" in text
    assert call(core, ctx, "replace_all", "10\\.0\\.0\\.1", "192.0.2.9") == 1
    msg = reparsed(ctx)
    assert "10.0.0.1" not in msg.to_bytes().decode()
    assert msg.via.host == "192.0.2.9" and msg.content_length == len(msg.body)
    assert call(core, ctx, "replace_all", "10\\.0\\.0\\.1", "x") == -1


def test_replace_never_touches_first_line(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "replace_all", "alice@example\\.com", "carol@example.net") == 1
    assert ctx.msg.ruri == "sip:alice@example.com;transport=udp"
    assert ctx.msg.to.uri_text == "sip:carol@example.net"


def test_replace_body_variants(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "replace_body", "IN IP4 10\\.0\\.0\\.1", "IN IP4 192.0.2.1") == 1
    assert ctx.msg.body.count(b"192.0.2.1") == 1
    assert call(core, ctx, "replace_body_all", "IN IP4 10\\.0\\.0\\.1", "IN IP4 192.0.2.1") == 1
    assert b"10.0.0.1" not in ctx.msg.body
    assert call(core, ctx, "replace_body_atonce", "^.+$", "") == 1
    assert ctx.msg.body == b"" and reparsed(ctx).content_length == 0
    assert call(core, ctx, "replace_body", "v=0", "x") == -1


def test_replace_hdrs_only_headers(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "replace_hdrs", "10\\.0\\.0\\.1", "192.0.2.7") == 1
    assert ctx.msg.via.host == "192.0.2.7"
    assert b"c=IN IP4 10.0.0.1" in ctx.msg.body
    assert call(core, ctx, "replace_hdrs", "v=0", "x") == -1


@pytest.mark.parametrize(("name", "mode", "hdr_count", "body_count"), [
    ("replace_str", "a", 0, 0), ("replace_str", "f", 1, 2),
    ("replace_body_str", "a", 2, 0), ("replace_hdrs_str", "a", 0, 2),
])
def test_replace_str_family(core: Core, name: str, mode: str, hdr_count: int,
                            body_count: int) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, name, "10.0.0.1", "192.0.2.5", mode) == 1
    msg = reparsed(ctx)
    head = msg.to_bytes().split(b"\r\n\r\n", 1)[0]
    assert head.count(b"10.0.0.1") == hdr_count
    assert msg.body.count(b"10.0.0.1") == body_count
    assert call(core, ctx, name, "10.0.0.1", "x", "z") == -1  # unknown mode


def test_subst_with_groups_flags_and_ruri(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "subst", r"/^To:(.*)sip:[^@]*@[a-z.]+(.*)$/To:\1\u\2/i") == 1
    assert ctx.msg.to.uri_text == "sip:alice@example.com;transport=udp"
    assert call(core, ctx, "subst", "/X-INFO/X-Data/") == -1  # case-sensitive without i
    assert call(core, ctx, "subst", "/X-INFO/X-Data/ig") == 1
    assert ctx.msg.header_count("X-Data") == 2
    assert call(core, ctx, "subst", "/broken") == -1


def test_subst_expands_pseudo_variables(core: Core) -> None:
    ctx = ctx_of(core)
    core.script_vars["gw"] = "gw.example.net"
    assert call(core, ctx, "subst", "/^Contact: <sip:bob@[^>]*>/Contact: <sip:bob@$var(gw)>/") == 1
    assert ctx.msg.contacts[0].uri_text == "sip:bob@gw.example.net"


def test_subst_body(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "subst_body", "/^o=([a-z]+) /o=\\1-x /") == 1
    assert b"o=alice-x 1 1" in ctx.msg.body
    assert reparsed(ctx).content_length == len(ctx.msg.body)


def test_subst_uri_and_user(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "subst_uri", "/^sip:([a-z]+)@(.*)$/sip:3463\\1@\\2;orig=\\0/") == 1
    assert ctx.msg.ruri.startswith("sip:3463alice@example.com;transport=udp;orig=sip:alice@")
    assert call(core, ctx, "subst_user", "/^3463(.*)$/\\1-x/") == 1
    assert ctx.msg.uri.user == "alice-x" and ctx.msg.uri.host == "example.com"
    assert call(core, ctx, "subst_user", "/^nomatch$/y/") == -1
    assert call(core, ctx, "subst_uri", "/nomatch/y/") == -1


def test_regex_substring_sets_variable(core: Core) -> None:
    ctx = ctx_of(core)
    text = "___ abc123def ___ ghi456 ___"
    assert call(core, ctx, "regex_substring", text, "([a-z]*)([0-9]+)([a-z]*)", 1, 3, "$var(out)") == 1
    assert core.script_vars["out"] == "abc"
    assert call(core, ctx, "regex_substring", text, "([0-9]+)", 2, 2, "$var(out)") == -1
    assert call(core, ctx, "regex_substring", text, "(zzz)", 1, 2, "$var(out)") == -1


def test_reply_messages_work_too(core: Core) -> None:
    reply = ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
             "From: <sip:b@x>;tag=1\r\nTo: <sip:a@y>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n"
             "Server: Old\r\nContent-Length: 0\r\n\r\n")
    ctx = ctx_of(core, reply)
    assert call(core, ctx, "replace", "Server: Old", "Server: New") == 1
    assert ctx.msg.status == 200 and ctx.msg.header("Server") == "New"
    assert call(core, ctx, "subst_uri", "/a/b/") == -1
