"""Pseudo-variables read from real SIP messages, spec parsing, formats, transformations."""

from __future__ import annotations

import pytest

from kemi_core.config.model import CoreConfig, ListenAddr
from kemi_core.pv import (
    PvError,
    PvReadOnlyError,
    compile_format,
    get_pv,
    parse_pv,
    set_pv,
)
from kemi_core.runtime.context import MsgContext, RecvInfo
from kemi_core.runtime.core import Core
from kemi_core.sip import parse_datagram

INVITE = (
    b"INVITE sip:bob@example.com:5070;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKxx\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@example.com>\r\n"
    b"From: \"Alice\" <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@10.0.0.1>\r\n"
    b"User-Agent: test-ua\r\n"
    b"P-Asserted-Identity: \"A\" <sip:+15551234@atlanta.com>\r\n"
    b"Refer-To: <sip:carol@chicago.com>\r\n"
    b"X-Multi: one\r\n"
    b"X-Multi: two\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n\r\nv=0\n"
)

REPLY = (
    b"SIP/2.0 486 Busy Here\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n"
    b"To: Bob <sip:bob@example.com>;tag=a6c85cf\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def make_ctx(raw: bytes = INVITE, proto: str = "udp") -> MsgContext:
    core = Core(CoreConfig(listen=[ListenAddr("udp", "127.0.0.1", 5060)]))
    return core.new_context(parse_datagram(raw), RecvInfo(proto, "10.0.0.2", 5062,
                                                          "127.0.0.1", 5060))


@pytest.fixture
def ctx() -> MsgContext:
    return make_ctx()


@pytest.mark.parametrize(("spec", "expected"), [
    ("$ru", "sip:bob@example.com:5070;transport=udp"),
    ("$rU", "bob"), ("$rd", "example.com"), ("$rp", 5070), ("$rP", "udp"), ("$rz", "sip"),
    ("$ou", "sip:bob@example.com:5070;transport=udp"), ("$oU", "bob"),
    ("$fu", "sip:alice@atlanta.com"), ("$fU", "alice"), ("$fd", "atlanta.com"),
    ("$ft", "1928301774"), ("$tu", "sip:bob@example.com"), ("$tU", "bob"),
    ("$td", "example.com"), ("$tn", "Bob"), ("$tt", None),
    ("$ci", "a84b4c76e66710@pc33.atlanta.com"), ("$cs", 314159), ("$rm", "INVITE"),
    ("$rs", None), ("$rr", None), ("$rv", "SIP/2.0"), ("$mt", 1),
    ("$ua", "test-ua"), ("$cl", 4), ("$cT", "application/sdp"), ("$rb", "v=0\n"),
    ("$ct", "<sip:alice@10.0.0.1>"), ("$ai", "sip:+15551234@atlanta.com"),
    ("$rt", "sip:carol@chicago.com"), ("$di", None),
    ("$si", "10.0.0.2"), ("$sp", 5062), ("$Ri", "127.0.0.1"), ("$Rp", 5060),
    ("$pr", "udp"), ("$proto", "udp"), ("$su", "sip:10.0.0.2:5062"),
    ("$du", None), ("$null", None), ("$mf", 0), ("$bf", 0), ("$br", None),
    ("$hdr(User-Agent)", "test-ua"), ("$hdr(i)", "a84b4c76e66710@pc33.atlanta.com"),
    ("$hdr(X-Missing)", None), ("$hdrc(Via)", 2), ("$hdrc(X-Missing)", 0),
    ("$(hdr(Via)[1])", "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKxx"),
    ("$(hdr(X-Multi)[-1])", "two"), ("$(hdr(X-Multi)[*])", "one,two"),
    ("$(hdr(X-Multi)[5])", None),
])
def test_message_pvs(ctx: MsgContext, spec: str, expected: object) -> None:
    assert get_pv(ctx, spec) == expected


def test_reply_pvs() -> None:
    ctx = make_ctx(REPLY)
    assert get_pv(ctx, "$rs") == 486
    assert get_pv(ctx, "$rr") == "Busy Here"
    assert get_pv(ctx, "$rm") == "INVITE"
    assert get_pv(ctx, "$mt") == 2
    assert get_pv(ctx, "$ru") is None
    assert get_pv(ctx, "$rU") is None
    assert get_pv(ctx, "$tt") == "a6c85cf"


def test_message_length_and_buffer(ctx: MsgContext) -> None:
    assert get_pv(ctx, "$ml") == len(INVITE)
    assert get_pv(ctx, "$mb") == INVITE.decode()


def test_default_port_and_tcp_source() -> None:
    raw = INVITE.replace(b"sip:bob@example.com:5070;transport=udp", b"sips:bob@example.com")
    ctx = make_ctx(raw, proto="tcp")
    # as Kamailio 5.6 shows them (tests/e2e/test_uri_pvs_vs_kamailio.py): 5061 only for
    # ;transport=tls, whatever the scheme
    assert (get_pv(ctx, "$rp"), get_pv(ctx, "$rP")) == (5060, "UDP")
    set_pv(ctx, "$ru", "sips:bob@example.com;transport=TLS")
    assert (get_pv(ctx, "$rp"), get_pv(ctx, "$rP")) == (5061, "TLS")
    set_pv(ctx, "$ru", "sips:bob@example.com")
    assert get_pv(ctx, "$rz") == "sips"
    assert get_pv(ctx, "$su") == "sip:10.0.0.2:5062;transport=tcp"


def test_write_ruri_parts(ctx: MsgContext) -> None:
    set_pv(ctx, "$rU", "carol")
    set_pv(ctx, "$rd", "chicago.com")
    set_pv(ctx, "$rp", 5080)
    assert get_pv(ctx, "$ru") == "sip:carol@chicago.com:5080;transport=udp"
    set_pv(ctx, "$rp", None)
    assert get_pv(ctx, "$ru") == "sip:carol@chicago.com;transport=udp"
    set_pv(ctx, "$ru", "sip:dave@10.1.1.1")
    assert ctx.msg.ruri == "sip:dave@10.1.1.1"
    assert get_pv(ctx, "$ou") == "sip:bob@example.com:5070;transport=udp"
    assert b"INVITE sip:dave@10.1.1.1 SIP/2.0\r\n" in ctx.msg.to_bytes()


def test_write_ruri_rejects_garbage(ctx: MsgContext) -> None:
    with pytest.raises(PvError):
        set_pv(ctx, "$ru", "not a uri")
    with pytest.raises(PvError):
        set_pv(ctx, "$ru", None)


def test_write_du_and_flags(ctx: MsgContext) -> None:
    set_pv(ctx, "$du", "sip:10.0.0.7:5090;transport=tcp")
    assert ctx.dst_uri == "sip:10.0.0.7:5090;transport=tcp"
    assert get_pv(ctx, "$dd") == "10.0.0.7"
    assert get_pv(ctx, "$dp") == 5090
    assert get_pv(ctx, "$dP") == "tcp"
    set_pv(ctx, "$du", None)
    assert ctx.dst_uri is None
    set_pv(ctx, "$mf", 5)
    assert ctx.flags == 5
    set_pv(ctx, "$bf", "3")
    assert ctx.bflags == 3
    set_pv(ctx, "$br", "sip:x@10.0.0.3")
    assert get_pv(ctx, "$br") == "sip:x@10.0.0.3"
    assert ctx.branches[0].uri == "sip:x@10.0.0.3"


def test_read_only(ctx: MsgContext) -> None:
    with pytest.raises(PvReadOnlyError):
        set_pv(ctx, "$ci", "x")
    with pytest.raises(PvReadOnlyError):
        parse_pv("$(ru{s.len})").set(ctx, 1)
    assert not parse_pv("$si").writable
    assert parse_pv("$ru").writable


@pytest.mark.parametrize("bad", ["$nope", "ru", "$", "$hdr", "$hdr()", "$ru junk",
                                 "$(ru", "$(ru{s.nosuch})", "$(ci[1])", "$(hdr(Via)[x])",
                                 "$xavp(a=>)", "$(ru{s.substr,a,1})"])
def test_parse_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_pv(bad)


def test_spec_attributes() -> None:
    spec = parse_pv("$(hdr(Via)[0])")
    assert spec.name == "hdr"
    assert spec.arg == "Via"
    assert spec.index == 0


@pytest.mark.parametrize(("spec", "expected"), [
    ("$(ru{uri.user})", "bob"), ("$(ru{uri.host})", "example.com"),
    ("$(ru{uri.port})", 5070), ("$(ru{uri.transport})", "udp"),
    ("$(ru{uri.param,transport})", "udp"), ("$(fu{s.len})", 21),
    ("$(rm{s.tolower})", "invite"), ("$(fU{s.toupper})", "ALICE"),
    ("$(ci{s.substr,0,8})", "a84b4c76"), ("$(ci{s.substr,-9,0})", "atlanta.com"[-9:]),
    ("$(ci{s.select,1,@})", "pc33.atlanta.com"), ("$(fU{s.strip,2})", "ice"),
    ("$(fU{s.striptail,2})", "ali"), ("$(hdr(From){nameaddr.uri})", "sip:alice@atlanta.com"),
    ("$(hdr(From){nameaddr.name})", "Alice"),
    ("$(hdr(From){param.value,tag})", "1928301774"),
    ("$(hdr(CSeq){s.int})", 314159), ("$(fu{uri.user}{s.len})", 5),
    ("$(hdr(X-Missing){s.len})", 0), ("$(hdr(X-Missing){s.tolower})", None),
])
def test_transformations(ctx: MsgContext, spec: str, expected: object) -> None:
    assert get_pv(ctx, spec) == expected


def test_compile_format(ctx: MsgContext) -> None:
    fmt = compile_format("method $rm to $(ru{uri.user}) from $si:$sp cost $$5 [$avp(none)]\n")
    assert fmt(ctx) == "method INVITE to bob from 10.0.0.2:5062 cost $5 [<null>]\n"
    assert compile_format("plain text")(ctx) == "plain text"
    assert compile_format("")(ctx) == ""
    assert compile_format("$hdr(X-Multi)")(ctx) == "one"


def test_compile_format_follows_changes(ctx: MsgContext) -> None:
    fmt = compile_format("ru=$ru var=$var(n)")
    set_pv(ctx, "$var(n)", 7)
    set_pv(ctx, "$rU", "zed")
    assert fmt(ctx) == "ru=sip:zed@example.com:5070;transport=udp var=7"


@pytest.mark.parametrize("bad", ["value $nope", "broken $(ru", "x $hdr", "$"])
def test_compile_format_errors(bad: str) -> None:
    with pytest.raises(ValueError):
        compile_format(bad)


def test_register_pv_module_variable(ctx: MsgContext) -> None:
    store: dict[str, object] = {}
    table = ctx.core.pv
    table.register("T_test_code", lambda c: store.get("code"),
                   lambda c, v: store.__setitem__("code", v))
    table.register("T_test_arg", lambda c, a: f"<{a}>", takes_arg=True)
    assert get_pv(ctx, "$T_test_code") is None
    set_pv(ctx, "$T_test_code", 408)
    assert get_pv(ctx, "$T_test_code") == 408
    assert get_pv(ctx, "$T_test_arg(k)") == "<k>"
    assert table.format("[$T_test_code]")(ctx) == "[408]"
    assert table.lookup("T_test_code") is not None and "T_test_arg" in table.names()
    with pytest.raises(PvError):
        table.register("T_test_code", lambda c: None)
    with pytest.raises(PvError):
        table.register("bad name", lambda c: None)
    # The variables are this core's: another core (another server) does not know them.
    other = Core(CoreConfig())
    assert other.pv.lookup("T_test_code") is None
    with pytest.raises(PvError, match="unknown pseudo-variable"):
        other.pv.parse("$T_test_code")


def test_time_and_process(ctx: MsgContext) -> None:
    ts = get_pv(ctx, "$Ts")
    assert isinstance(ts, int) and ts > 1_600_000_000
    assert get_pv(ctx, "$Ts") == ts  # cached per message
    assert isinstance(get_pv(ctx, "$TS"), int)
    assert isinstance(get_pv(ctx, "$pp"), int)
    assert isinstance(get_pv(ctx, "$Tf"), str)
    mi = get_pv(ctx, "$mi")
    assert get_pv(ctx, "$mi") == mi
    assert get_pv(make_ctx(), "$mi") != mi


def test_variable_index(ctx: MsgContext) -> None:
    """``$(name[$var(i)])``: the index is the variable's value when read ($null or text: 0)."""
    set_pv(ctx, "$var(i)", 1)
    assert get_pv(ctx, "$(hdr(Via)[$var(i)])") == "SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKxx"
    assert ctx.core.pv.format("[$(hdr(X-Multi)[$var(i)])]")(ctx) == "[two]"
    set_pv(ctx, "$var(i)", "x")
    assert get_pv(ctx, "$(hdr(X-Multi)[$var(i)])") == "one"
    assert not parse_pv("$(hdr(Via)[$var(i)])").writable  # $hdr has no indexed setter


def test_indexed_setter(ctx: MsgContext) -> None:
    store = ["a", "b"]

    def put(c: MsgContext, arg: str, idx: int, value: object) -> None:
        store[idx] = str(value)

    ctx.core.pv.register("T_list", lambda c, a: store[0], takes_arg=True,
                         index_getter=lambda c, a, i: store[i or 0], index_setter=put)
    set_pv(ctx, "$var(j)", 1)
    set_pv(ctx, "$(T_list(x)[$var(j)])", "B")
    set_pv(ctx, "$(T_list(x)[0])", "A")
    assert store == ["A", "B"] and get_pv(ctx, "$(T_list(x)[1])") == "B"
    assert not ctx.core.pv.parse("$(T_list(x)[*])").writable


@pytest.mark.parametrize(("value", "expected"), [
    ("sip:10.0.0.7:5090", "sip:10.0.0.7:5090"), ("", None), (None, None)])
def test_du_takes_a_uri_string_and_empty_or_null_clear_it(value: str | None,
                                                          expected: str | None) -> None:
    """$du's setter: a str as it is (no str() call), "" and $null clear the destination, and
    anything that is no URI (an int 0 included) is refused."""
    ctx = make_ctx()
    set_pv(ctx, "$du", "sip:10.0.0.1")
    set_pv(ctx, "$du", value)
    assert ctx.dst_uri == expected
    for bad in (0, 5, "not a uri"):
        with pytest.raises(PvError, match="invalid URI for \\$du"):
            set_pv(ctx, "$du", bad)


@pytest.mark.parametrize("to", ["<sip:b@x>;tag=t1", "<sip:b@x>", "<sip:b@x>;tag=", "<sip:b@x;tag=u>",
                                "b@x", "<sip:b@x", "\"unterminated <sip:b@x>;tag=2", None])
def test_tt_ft_read_as_the_composed_readers(to: str | None) -> None:
    """$tt/$ft read the tag in one step: what the From/To reader then the tag reader give,
    $null on a malformed or missing header."""
    from kemi_core.pv.builtin_msg import _from, _na_tag, _tag, _to

    head = INVITE.split(b"\r\n\r\n")[0].split(b"\r\n")
    head = [h for h in head if not h.startswith((b"To:", b"From:", b"Content-"))]
    if to is not None:
        head += [b"To: " + to.encode(), b"From: " + to.encode()]
    c = make_ctx(b"\r\n".join(head) + b"\r\nContent-Length: 0\r\n\r\n")
    assert _tag(c, True) == _na_tag(_to(c)) and get_pv(c, "$tt") == _na_tag(_to(c))
    assert _tag(c, False) == _na_tag(_from(c)) and get_pv(c, "$ft") == _na_tag(_from(c))


@pytest.mark.parametrize(("from_", "to", "expected"), [
    (b"<sip:alice@atlanta.com>;tag=1", b"<sip:bob@example.com>", ("atlanta.com", "example.com")),
    (b"<tel:+15551234>;tag=1", b"<http://example.com>", (None, None)),  # no host; other scheme
    (b"<sip:alice@[bad>;tag=1", b"<sip:bob@ex ample.com>", (None, None)),  # do not parse
])
def test_from_and_to_domain_read_as_their_uris(from_: bytes, to: bytes,
                                               expected: tuple[str | None, str | None]) -> None:
    raw = INVITE.replace(b'"Alice" <sip:alice@atlanta.com>;tag=1928301774', from_).replace(
        b"Bob <sip:bob@example.com>", to)
    for spec, want in zip(("$fd", "$td"), expected, strict=True):
        ctx = make_ctx(raw)
        assert get_pv(ctx, spec) == want
        # a URI that does not parse leaves Kamailio's bad-URI error for sl_reply_error, as $fU
        bad = want is None and b"sip:" in (from_ if spec == "$fd" else to)
        assert ("last_error" in ctx.extra) == bad
        if bad:
            user_ctx = make_ctx(raw)
            assert get_pv(user_ctx, "$fU" if spec == "$fd" else "$tU") is None
            assert user_ctx.extra["last_error"] == ctx.extra["last_error"]
