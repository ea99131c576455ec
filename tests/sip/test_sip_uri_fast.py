"""The compiled parse of the usual sip: URI (_fast.c, uri_parser) against the Python reference
(uri._parse_uri_py): on every text it takes, the same SipUri field by field (parameter order
and value types included); every other text, and every text Python refuses, it hands back
(None) so that Python decides."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kemi_core.sip.uri as uri_mod
from kemi_core.sip import SipParseError
from kemi_core.sip.syntax import PURE_PYTHON
from kemi_core.sip.uri import SipUri, _parse_uri_py

fast = pytest.importorskip(
    "kemi_core.sip._fast", reason="the C helpers were not built (no compiler at install time)"
)
parse_fast = fast.uri_parser(SipUri)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "rfc4475"  # RFC 4475's 49 messages


def fields(u: SipUri) -> tuple[object, ...]:
    return (type(u), u.scheme, u.user, u.password, u.host, u.port, type(u.port),
            list(u.params.items()), list(u.headers.items()))  # fmt: skip


def python_outcome(text: str) -> object:
    try:
        return fields(_parse_uri_py(text))
    except SipParseError as exc:
        return ("raised", exc.status)


def check(text: str) -> bool:
    """The compiled answer agrees with Python's; True when the compiled form took the text."""
    u = parse_fast(text)
    if u is None:
        return False
    assert fields(u) == python_outcome(text), text
    return True


USUAL = [
    "sip:alice@127.0.0.1:5060",
    "sip:alice@127.0.0.1",
    "sips:bob@example.com",
    "sip:127.0.0.1:5090",
    "sip:127.0.0.1:5060;lr;ftag=4SIPpTag001",
    "sip:127.0.0.1;lr;ftag=abc;did=1c.3;nat=yes",
    "sip:+15551234567@gw.example.net;user=phone",
    "sip:%61lice@atlanta.com;transport=TCP",
    "sip:alice@atlanta.com;maddr=239.255.255.1;ttl=15",
    "sip:a.b-c_d!~*'()&=+$,;?/@host_1.example",
    "sip:x@h:0",
    "sip:x@h:65535",
    "sip:x@h:00001",
    "sip:h;LR;Transport=UDP;lr=2",  # a repeated name keeps its last value, first place
    "sip:h;a=;b==c;c=x@y",
    "sip:host;x=a@b",  # the user ends at the first '@', wherever it is (as in Python)
    "sip:a@b;x=c@d",
    "sip:user;par=1@host",
]
OTHER = [
    "", "sip:", "sips:", "sip:@h", "SIP:a@h", "Sip:a@h", "tel:+1555", "http://x", "sip",
    " sip:a@h", "sip:a@h ", "sip:a@h\r", "sip:a b@h", "sip:a@h;x\x00", "sip:a@h;x\x7f",
    "sip:a@h<", 'sip:a@"h"', "sip:a:pw@h", "sip:a@h?subject=x", "sip:a@h;x=1?y=2",
    "sip:a@[::1]:5060", "sip:[2001:db8::1];lr", "sip:a@h:", "sip:a@h:123456", "sip:a@h:65536",
    "sip:a@h:99999", "sip:a@h:5060x", "sip:a@h:50:60", "sip:a@h;", "sip:a@h;;lr", "sip:a@h;=x",
    "sip:a@h;lr;", "sip:a@b@c", "sip:a@h/x", "sip:a@h,x", "sip:a@h\u00e9", "sip:\u00e9@h",
    "sip:a@h\udc80", "sip:a^b@h", "sip:a@", "sip:a@:5060", "sips::5060", "sip:a@h:5060:",
    "sip:" + "9" * 40 + "@h:" + "9" * 40,
]


@pytest.mark.skipif(PURE_PYTHON, reason="KEMI_SIP_PURE is set")
def test_compiled_parse_is_in_use() -> None:
    assert uri_mod._uri_fast is not None
    assert type(uri_mod._parse_uri("sip:a@h;lr")) is SipUri


@pytest.mark.parametrize("text", USUAL)
def test_usual_uris_are_taken_and_read_as_python(text: str) -> None:
    assert check(text), f"the compiled parse did not take {text!r}"


@pytest.mark.parametrize("text", OTHER)
def test_other_uris_are_left_to_python(text: str) -> None:
    assert parse_fast(text) is None


def test_not_a_str_is_left_to_python() -> None:
    for value in (None, b"sip:a@h", 5, ["sip:a@h"]):
        assert parse_fast(value) is None
    with pytest.raises(TypeError):
        fast.uri_parser(None)


class OddStr(str):
    pass


def test_a_str_subclass_reads_as_python() -> None:
    assert check(OddStr("sip:a@h:5060;lr"))


def corpus_uris() -> list[str]:
    """Every sip:/sips:-looking text of RFC 4475's messages (request lines, name-addrs)."""
    found: set[str] = set()
    for path in sorted(CORPUS.glob("*.dat")):
        text = path.read_bytes().decode("utf-8", "surrogateescape")
        found.update(re.findall(r"(?i)sips?:[^\s<>\",]*", text))
        found.update(re.findall(r"<([^<>]*)>", text))
    return sorted(found)


def test_rfc4475_uris_read_as_python() -> None:
    uris = corpus_uris()
    assert len(uris) > 40
    taken = sum(check(u) for u in uris)
    assert taken > 20  # most of them are usual, and those must be taken


chars = string.ascii_letters + string.digits + "-_.!~*'()&=+$,;?/%@:[] <>\"\t\r\x00\x7f\u00e9"
piece = st.text(st.sampled_from(chars), max_size=8)
word = st.text(string.ascii_letters + string.digits + "-_.", min_size=1, max_size=8)
user = st.one_of(st.none(), word, st.text(string.ascii_letters + "%-_.!~*'()&=+$,;?/:",
                                          min_size=0, max_size=8))  # fmt: skip
port = st.one_of(st.none(), st.text("0123456789", max_size=7), st.integers(0, 70000).map(str))
param = st.tuples(st.one_of(word, st.sampled_from(["lr", "LR", "ftag", "Transport", ""])),
                  st.one_of(st.none(), st.text(string.ascii_letters + string.digits + "=@:.-",
                                               max_size=6)))  # fmt: skip


@st.composite
def sip_uri(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["sip", "sips", "SIP", "tel", "sipx", ""]))
    u = draw(user)
    host = draw(st.one_of(st.lists(word, min_size=1, max_size=3).map(".".join),
                          st.just("[::1]"), piece))  # fmt: skip
    p = draw(port)
    ps = draw(st.lists(param, max_size=4))
    text = f"{scheme}:" + ("" if u is None else f"{u}@") + host + ("" if p is None else f":{p}")
    text += "".join(f";{n}" if v is None else f";{n}={v}" for n, v in ps)
    if draw(st.booleans()):
        pos = draw(st.integers(0, len(text)))
        text = text[:pos] + draw(piece) + text[pos:]
    return text


@settings(max_examples=1500, deadline=None)
@given(sip_uri())
def test_generated_uris_read_as_python(text: str) -> None:
    check(text)


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(chars + "sip"), max_size=30).map(lambda t: "sip:" + t))
def test_random_text_after_the_scheme_reads_as_python(text: str) -> None:
    check(text)


# ---- NameAddr.uri: the compiled descriptor (memo_value) against the property -------------------
NAME_ADDRS = ["<sip:a@h;lr;ftag=1>", "Bob <sips:b@h:5061>", "sip:c@h", "*", "<tel:+1555>",
              "<http://x.example>", "<sip:a@[::1]>;tag=x", "<sip:>", "<sip:a@h:99999>"]


@pytest.mark.skipif(PURE_PYTHON, reason="KEMI_SIP_PURE is set")
@pytest.mark.parametrize("value", NAME_ADDRS)
def test_name_addr_uri_reads_as_the_property(value: str) -> None:
    """Each way the compiled descriptor answers, against the property on the same values: a
    text the memo lacks (the property parses it), a new value whose text the memo has (read
    there, no __dict__ yet), and the value's own cache."""
    from kemi_core.sip.headers import parse_name_addr
    from kemi_core.sip.values import NameAddr

    assert type(NameAddr.__dict__["uri"]).__name__ == "memo_value"

    def reads(getter: object) -> list[object]:
        uri_mod._SHARED.pop(parse_name_addr(value, allow_star=True).uri_text, None)
        out: list[object] = []
        for na in (parse_name_addr(value, allow_star=True), parse_name_addr(value, allow_star=True)):
            for _ in range(2):  # the first read (a parse, then the memo), then the cached value
                try:
                    out.append(getter(na))  # type: ignore[operator]
                except SipParseError as exc:
                    out.append(("raised", exc.status))
        return out

    compiled = reads(lambda na: na.uri)
    assert compiled == reads(NameAddr.uri_py.fget)  # type: ignore[attr-defined]
    if not isinstance(compiled[0], tuple):  # (an error: raised at each read, as the property)
        assert all(u is compiled[0] for u in compiled)  # the memo's SipUri (or None)


@pytest.mark.skipif(PURE_PYTHON, reason="KEMI_SIP_PURE is set")
def test_memo_value_descriptor() -> None:
    """memo_value on a tuple subclass: its __dict__ first, then the memo (the value kept in
    __dict__, made if absent), then the getter; bad arguments refused."""

    memo = {"known": "from the memo"}

    class Pair(tuple):  # type: ignore[type-arg]
        def slow(self) -> str:
            self.__dict__["_v"] = value = "parsed " + self[1]
            return value

        v = fast.memo_value("_v", memo, 1, slow)

    known, other, odd = Pair(("x", "known")), Pair(("x", "other")), Pair(("x", 5))
    assert not hasattr(known, "_v") and "_v" not in known.__dict__
    assert known.v == "from the memo" and known.__dict__ == {"_v": "from the memo"}
    memo["known"] = "changed"
    assert known.v == "from the memo"  # its own cache first
    assert other.v == "parsed other" and other.v == "parsed other"
    with pytest.raises(TypeError):
        odd.v  # noqa: B018 - not a text: the getter's answer (here its error)
    assert Pair(("x",)).__dict__ == {} and type(Pair.__dict__["v"]).__name__ == "memo_value"
    with pytest.raises(IndexError):
        Pair(("x",)).v  # noqa: B018 - no item 1: the getter's answer
    bad_args: tuple[object, ...]
    for bad_args in (("_v", memo, -1, str), ("_v", [], 1, str), (1, memo, 1, str),
                     ("_v", memo, 1, None), ("_v", memo, 2**80, str), ("_v", memo, 1)):
        with pytest.raises(TypeError):
            fast.memo_value(*bad_args)
