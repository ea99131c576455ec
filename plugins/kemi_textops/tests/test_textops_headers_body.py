"""textops header, body, multipart, string and cfg-function behaviour on real SIP bytes."""

from __future__ import annotations

from typing import Any

import pytest

import kemi_textops
from kemi_core.api import Core, CoreConfig, MsgContext, RecvInfo
from kemi_core.sip import parse_datagram
from kemi_core.testing import ModuleLoader
from kemi_textops.headers import insert_hf  # (a cfg function: not in the registry)

# The same INVITE as test_textops_search_replace (test modules cannot import each other here).

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


MULTI_CT = 'multipart/mixed;boundary="b1"'
MULTI_BODY = ("--b1\r\nContent-Type: application/sdp\r\n\r\n" + SDP + "\r\n"
              "--b1\r\nContent-Type: application/isup\r\nContent-Disposition: signal\r\n\r\n"
              "ISUPDATA\r\n--b1--\r\n")


@pytest.fixture
def core() -> Core:
    core = Core(CoreConfig())
    ModuleLoader(core, available={}).register("textops", kemi_textops)
    return core


def multipart_invite() -> str:
    head = INVITE.split("Content-Type:", 1)[0]
    return head + f"Content-Type: {MULTI_CT}\r\nContent-Length: {len(MULTI_BODY)}\r\n\r\n" + MULTI_BODY


def cfg(core: Core, name: str) -> Any:
    return core.cfg_functions[name].func


# ---- headers ---------------------------------------------------------------------------
def test_presence(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "is_present_hf", "From") == 1
    assert call(core, ctx, "is_present_hf", "f") == 1  # compact form
    assert call(core, ctx, "is_present_hf", "Route") == -1
    assert call(core, ctx, "is_present_hf_re", "^P-") == 1
    assert call(core, ctx, "is_present_hf_re", "^Q-") == -1


def test_search_hf_flags(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "search_hf", "X-Info", "^keep$", "a") == 1
    assert call(core, ctx, "search_hf", "X-Info", "^keep$", "f") == -1
    assert call(core, ctx, "search_hf", "X-Info", "^keep$", "l") == 1
    assert call(core, ctx, "search_hf", "From", ";tag=19", "") == 1
    assert call(core, ctx, "search_hf", "Route", ".", "a") == -1


def test_subst_hf(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "subst_hf", "X-Info", "/^(.*)$/v-\\1/", "l") == 1
    assert ctx.msg.headers("X-Info") == ["data-one", "v-keep"]
    assert call(core, ctx, "subst_hf", "From", "/bob/robert/", "a") == 1
    assert ctx.msg.from_.uri_text == "sip:robert@example.org"
    assert call(core, ctx, "subst_hf", "Route", "/a/b/", "a") == -1


def test_remove_hf_family(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "remove_hf", "Contact") == 1
    assert call(core, ctx, "remove_hf", "m") == -1  # already gone, compact name
    assert call(core, ctx, "remove_hf_exp", "^P-", "^P-Keep-") == 1
    assert not ctx.msg.has_header("P-Asserted-Identity") and ctx.msg.has_header("P-Keep-Me")
    assert call(core, ctx, "remove_hf_re", "^P-") == 1
    assert not ctx.msg.has_header("P-Keep-Me")
    assert call(core, ctx, "remove_hf_re", "^P-") == -1


def test_remove_hf_idx_and_match(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "remove_hf_idx", "X-Info", -1) == 1
    assert ctx.msg.headers("X-Info") == ["data-one"]
    assert call(core, ctx, "remove_hf_idx", "X-Info", 3) == -1
    ctx = ctx_of(core)
    assert call(core, ctx, "remove_hf_match", "X-Info", "re", "^data") == 1
    assert ctx.msg.headers("X-Info") == ["keep"]
    assert call(core, ctx, "remove_hf_match", "X-Info", "eq", "nope") == -1
    assert call(core, ctx, "remove_hf_match", "X-Info", "ne", "nope") == 1
    assert not ctx.msg.has_header("X-Info")
    assert call(core, ctx, "remove_hf_match", "X-Info", "xx", "a") == -1
    assert reparsed(ctx).call_id == "a84b4c76e66710@pc33.example.org"


def test_is_privacy(core: Core) -> None:
    ctx = ctx_of(core, INVITE.replace("P-Keep-Me: yes\r\n", "Privacy: id; header\r\n"))
    assert call(core, ctx, "is_privacy", "id") == 1
    assert call(core, ctx, "is_privacy", "header") == 1
    assert call(core, ctx, "is_privacy", "user") == -1
    assert call(core, ctx_of(core), "is_privacy", "id") == -1


def test_cfg_append_insert_and_reply_queue(core: Core) -> None:
    ctx = ctx_of(core)
    core.script_vars["h"] = "VOICEMAIL"
    assert cfg(core, "append_hf")(ctx, "P-Hint: $var(h)\r\n") == 1
    assert cfg(core, "append_hf")(ctx, "X-After: 1\r\n", "Call-ID") == 1
    assert cfg(core, "insert_hf")(ctx, "X-First: 1\r\n") == 1
    assert cfg(core, "insert_hf")(ctx, "X-Before: 1\r\n", "CSeq") == 1
    assert cfg(core, "append_hf")(ctx, "X-Last-Info: 1\r\n", "X-Info") == 1  # after the last X-Info
    assert cfg(core, "append_hf")(ctx, "not a header") == -1
    names = [n for n, _v in reparsed(ctx).iter_headers()]
    assert names[0] == "X-First" and names[-1] == "P-Hint"
    assert names.index("X-After") == names.index("Call-ID") + 1
    assert names.index("X-Before") == names.index("CSeq") - 1
    assert names[names.index("X-Last-Info") - 1] == "X-Info"
    assert cfg(core, "append_urihf")(ctx, "CC-Diversion: ", "\r\n") == 1
    assert ctx.msg.header("CC-Diversion") == "sip:alice@example.com;transport=udp"
    assert cfg(core, "append_to_reply")(ctx, "Foo: $var(h)\r\n") == 1
    assert cfg(core, "append_time")(ctx) == 1
    assert ctx.extra["reply_headers"][0] == "Foo: VOICEMAIL\r\n"
    assert ctx.extra["reply_headers"][1].startswith("Date: ")
    assert cfg(core, "append_time_to_request")(ctx) == 1 and ctx.msg.has_header("Date")


def test_cfg_is_method(core: Core) -> None:
    ctx = ctx_of(core)
    assert cfg(core, "is_method")(ctx, "INVITE") == 1
    assert cfg(core, "is_method")(ctx, "OPTIONS|invite") == 1
    assert cfg(core, "is_method")(ctx, "BYE|CANCEL") == -1
    for _ in range(2):  # the second time from the split kept for this text
        assert cfg(core, "is_method")(ctx, " bye | Invite ") == 1
        assert cfg(core, "is_method")(ctx, "INVITEX|NVITE") == -1


# ---- body ------------------------------------------------------------------------------
def test_has_body_and_type(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "has_body") == 1
    assert call(core, ctx, "has_body_type", "application/sdp") == 1
    assert call(core, ctx, "has_body_type", "text/plain") == -1
    assert cfg(core, "has_body")(ctx, "application/sdp") == 1 and cfg(core, "has_body")(ctx) == 1
    empty = INVITE.split("Content-Type:")[0] + "Content-Length: 0\r\n\r\n"
    assert call(core, ctx_of(core, empty), "has_body") == -1
    multi = ctx_of(core, multipart_invite())
    assert call(core, multi, "has_body_type", "application/isup") == 1


def test_set_body_and_reply_body(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "set_body", "hello", "text/plain") == 1
    msg = reparsed(ctx)
    assert msg.body == b"hello" and msg.content_type == "text/plain" and msg.content_length == 5
    assert call(core, ctx, "set_reply_body", "busy", "text/plain") == 1
    assert ctx.extra["reply_body"] == (b"busy", "text/plain")


def test_is_audio_on_hold(core: Core) -> None:
    assert call(core, ctx_of(core), "is_audio_on_hold") == -1
    def with_sdp(sdp: str) -> str:
        return INVITE.replace(SDP, sdp).replace(f"Content-Length: {len(SDP)}",
                                                f"Content-Length: {len(sdp)}")
    held = with_sdp(SDP.replace("c=IN IP4 10.0.0.1", "c=IN IP4 0.0.0.0"))
    assert call(core, ctx_of(core, held), "is_audio_on_hold") == 1
    rfc3264 = with_sdp(SDP + "a=sendonly\r\n")
    assert call(core, ctx_of(core, rfc3264), "is_audio_on_hold") == 2


def test_multipart_read_filter_remove(core: Core) -> None:
    ctx = ctx_of(core, multipart_invite())
    assert call(core, ctx, "get_body_part", "application/isup", "$var(p)") == 1
    assert core.script_vars["p"] == "ISUPDATA"
    assert call(core, ctx, "get_body_part_raw", "application/isup", "$var(r)") == 1
    assert core.script_vars["r"].startswith("--b1\r\nContent-Type: application/isup\r\n")
    assert call(core, ctx, "get_body_part", "text/html", "$var(p)") == -1
    assert call(core, ctx, "remove_body_part", "application/isup") == 1
    assert b"ISUPDATA" not in ctx.msg.body and ctx.msg.body.endswith(b"--b1--\r\n")
    assert call(core, ctx, "filter_body", "application/sdp") == 1
    assert ctx.msg.body.decode() == SDP
    assert reparsed(ctx).content_length == len(SDP)


def test_multipart_build(core: Core) -> None:
    ctx = ctx_of(core)
    assert call(core, ctx, "set_body_multipart_mode") == 1
    assert ctx.msg.content_type == 'multipart/mixed;boundary="unique-boundary-1"'
    assert ctx.msg.header("Mime-Version") == "1.0"
    assert call(core, ctx, "append_body_part", "text one", "text/plain") == 1
    assert call(core, ctx, "append_body_part_cd", "x", "application/x-a", "signal;handling=required") == 1
    assert call(core, ctx, "append_body_part_hex", "6b 61 6d 61 69 6c 69 6f", "application/x-b") == 1
    assert call(core, ctx, "append_body_part_hex_cd", "6869", "application/x-c", "render") == 1
    assert call(core, ctx, "append_body_part_hex", "zz", "application/x-d") == -1
    for ctype, content in (("application/sdp", SDP), ("text/plain", "text one"),
                           ("application/x-b", "kamailio"), ("application/x-c", "hi")):
        assert call(core, ctx, "get_body_part", ctype, "$var(c)") == 1
        assert core.script_vars["c"] == content
    assert b"Content-Disposition: signal;handling=required" in ctx.msg.body
    assert call(core, ctx, "set_body_multipart_boundary", "zz") == 1
    assert b"--zz--\r\n" in ctx.msg.body and call(core, ctx, "has_body_type", "text/plain") == 1
    assert call(core, ctx, "set_body_multipart_content", "only", "text/plain") == 1
    assert call(core, ctx, "has_body_type", "application/sdp") == -1
    assert call(core, ctx, "set_body_multipart", "only", "text/plain", "bb") == 1
    assert ctx.msg.body == b"--bb\r\nContent-Type: text/plain\r\n\r\nonly\r\n--bb--\r\n"
    assert reparsed(ctx).content_length == len(ctx.msg.body)


# ---- strings -----------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "args", "rc"), [
    ("cmp_str", ("abc", "abc"), 1), ("cmp_str", ("abc", "ABC"), -1),
    ("cmp_istr", ("abc", "ABC"), 1), ("cmp_istr", ("abc", "abd"), -1),
    ("starts_with", ("+358123", "+358"), 1), ("starts_with", ("358", "+358"), -1),
    ("ends_with", ("user8800", "8800"), 1), ("ends_with", ("8800user", "8800"), -1),
    ("str_find", ("Alice", "lic"), 1), ("str_find", ("Alice", "LIC"), -1),
    ("str_ifind", ("Alice", "LIC"), 1), ("str_ifind", ("Alice", "bob"), -1),
    ("in_list", ("fi", "dk,fi,no,se", ","), 1), ("in_list", ("f", "dk,fi", ","), -1),
    ("in_list", ("fi", "dk,fi", ",,"), -1),
    ("in_list_prefix", ("final", "dk,fi,no", ","), 1), ("in_list_prefix", ("xfinal", "fi", ","), -1),
])
def test_string_functions(core: Core, name: str, args: tuple[str, ...], rc: int) -> None:
    assert call(core, ctx_of(core), name, *args) == rc


def test_exports_match_kamailio_kinds(core: Core) -> None:
    exps = core.registry.module("textops")
    assert len(exps) == 54
    assert [k.value for k in exps["regex_substring"].params] == ["str", "str", "int", "int", "str"]
    assert exps["remove_hf_idx"].params[1].value == "int"
    assert all(e.returns.value == "int" for e in exps.values())
    assert {"append_hf", "insert_hf", "append_to_reply", "is_method", "has_body"} <= set(core.cfg_functions)


# ---- lines added at the top stay counted across whole-text edits (Kamailio's insert order) --
def _top(ctx: MsgContext, count: int) -> list[str]:
    return [line.split(":")[0] for line in ctx.msg.to_bytes().decode().split("\r\n")[1:1 + count]]


@pytest.mark.parametrize("edit", [
    ("subst", "/X-Info: keep/X-Info: kept/"),
    ("replace_all", "data-one", "data-two"),
    ("subst_hf", "CSeq", "/314159/1/", "a"),
    ("remove_hf_idx", "X-Info", 1),
])
def test_an_insertion_after_a_whole_text_edit_goes_below_the_earlier_ones(
        core: Core, edit: tuple[Any, ...]) -> None:
    ctx = ctx_of(core)
    assert insert_hf(ctx, "X-A: 1\r\nX-B: 2\r\n") == 1
    before = ctx.msg
    assert call(core, ctx, *edit) == 1
    assert ctx.msg is not before  # (the text was rewritten and parsed again)
    assert insert_hf(ctx, "X-C: 3\r\n") == 1
    assert _top(ctx, 4) == ["X-A", "X-B", "X-C", "Via"]


def test_the_count_follows_lines_of_the_block_removed_by_text(core: Core) -> None:
    ctx = ctx_of(core)
    insert_hf(ctx, "X-A: 1\r\nX-A: 2\r\nX-B: 3\r\n")
    assert call(core, ctx, "remove_hf_idx", "X-A", 0) == 1  # one of two: by text
    insert_hf(ctx, "X-C: 4\r\n")
    assert _top(ctx, 4) == ["X-A", "X-B", "X-C", "Via"]
    assert ctx.msg.front_count() == 3


def test_a_line_inserted_before_the_first_header_joins_the_top_lines(core: Core) -> None:
    ctx = ctx_of(core)
    insert_hf(ctx, "X-A: 1\r\n")
    assert insert_hf(ctx, "X-Q: 5\r\n", "Via") == 1
    assert insert_hf(ctx, "X-Q2: 6\r\n", "To") == 1  # not the first: stays put
    insert_hf(ctx, "X-C: 3\r\n")
    assert _top(ctx, 4) == ["X-A", "X-Q", "X-C", "Via"]
    assert ctx.msg.front_count() == 3


def _names(ctx: MsgContext) -> list[str]:
    return [n for n, _v in ctx.msg.iter_headers()]


def test_lines_added_at_one_place_come_in_the_order_of_the_calls(core: Core) -> None:
    """Kamailio adds at offsets of the message as received: after From and before the header
    after it are one place; each added line goes below those added there before."""
    ctx = ctx_of(core)
    append_hf = cfg(core, "append_hf")
    assert append_hf(ctx, "X-A: 1\r\n", "From") == 1
    assert insert_hf(ctx, "X-B: 2\r\n", "Call-ID") == 1
    assert append_hf(ctx, "X-C: 3\r\nX-D: 4\r\n", "From") == 1
    names = _names(ctx)
    at = names.index("From")
    assert names[at:at + 6] == ["From", "X-A", "X-B", "X-C", "X-D", "Call-ID"]


def test_added_lines_stay_marked_across_a_whole_text_edit(core: Core) -> None:
    ctx = ctx_of(core)
    append_hf = cfg(core, "append_hf")
    assert append_hf(ctx, "X-A: 1\r\n", "From") == 1
    before = ctx.msg
    assert call(core, ctx, "subst", "/314159/1/") == 1
    assert ctx.msg is not before
    assert append_hf(ctx, "X-C: 3\r\n", "From") == 1
    names = _names(ctx)
    assert names[names.index("From") + 1:names.index("From") + 3] == ["X-A", "X-C"]
