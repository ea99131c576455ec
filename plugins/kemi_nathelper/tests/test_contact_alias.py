"""set_contact_alias and add_contact_alias sans-IO: the first Contact URI gets ;alias, a bare
addr-spec gets <...> first, every other byte stays as written."""

from __future__ import annotations

import attrs
import pytest

import kemi_nathelper
from kemi_core.api import MsgContext
from kemi_core.testing import context, offline_core
from kemi_nathelper import contact


def _ctx(contact_value: str | None) -> MsgContext:
    core, _ = offline_core(("nathelper", kemi_nathelper))
    contact_line = "" if contact_value is None else f"Contact: {contact_value}\r\n"
    raw = ("INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.10:5061;branch=z9hG4bKa\r\n"
           "From: <sip:a@h>;tag=1\r\nTo: <sip:bob@h>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
           f"{contact_line}Content-Length: 0\r\n\r\n")
    return context(core, raw, src=("203.0.113.7", 40000))


@pytest.mark.parametrize(("before", "after"), [
    ("<sip:a@192.168.1.10:5061>", "<sip:a@192.168.1.10:5061;alias=203.0.113.7~40000~1>"),
    ("sip:a@192.168.1.10;expires=60", "<sip:a@192.168.1.10;alias=203.0.113.7~40000~1>;expires=60"),
    ('"A, B" <sip:a@h;x=1?h=v>, <sip:c@d>', '"A, B" <sip:a@h;x=1;alias=203.0.113.7~40000~1?h=v>, <sip:c@d>'),
    ("sip:a@h, sip:c@d", "<sip:a@h;alias=203.0.113.7~40000~1>, sip:c@d"),
])
def test_set_contact_alias(before: str, after: str) -> None:
    contact._EDITED.clear()
    for _ in range(2):  # the second from the memo of edited Contact values
        ctx = _ctx(before)
        assert contact.set_contact_alias(ctx) == 1
        assert ctx.msg.header("contact") == after
        assert ctx.msg.to_bytes() == _ctx(after).msg.to_bytes()


def test_the_memo_of_edits_is_per_value_source_and_change() -> None:
    contact._EDITED.clear()
    value = "<sip:a@192.168.1.10:5061;alias=1.2.3.4~5~1>"
    ctx = _ctx(value)
    assert contact.set_contact_alias(ctx, 1) == 1  # trim: the old alias goes
    assert ctx.msg.header("contact") == "<sip:a@192.168.1.10:5061;alias=203.0.113.7~40000~1>"
    ctx = _ctx(value)
    assert contact.set_contact_alias(ctx) == 1
    assert ctx.msg.header("contact") == ("<sip:a@192.168.1.10:5061;alias=1.2.3.4~5~1"
                                         ";alias=203.0.113.7~40000~1>")
    ctx = _ctx(value)
    ctx.rcv = attrs.evolve(ctx.rcv, src_port=40001)
    assert contact.set_contact_alias(ctx, 1) == 1
    assert ctx.msg.header("contact") == "<sip:a@192.168.1.10:5061;alias=203.0.113.7~40001~1>"
    for _ in range(2):
        ctx = _ctx(value)
        assert contact.fix_nated_contact(ctx) == 1
        assert ctx.msg.header("contact") == "<sip:a@203.0.113.7:40000;alias=1.2.3.4~5~1>"
    for _ in range(2):  # a failed change is not kept: it fails (and logs) each time
        ctx = _ctx("tel:+123")
        assert contact.set_contact_alias(ctx) == -1
        assert ctx.msg.header("contact") == "<tel:+123>"


def test_no_contact_and_non_sip_uri() -> None:
    assert contact.set_contact_alias(_ctx(None)) == -1
    ctx = _ctx("tel:+123")
    assert contact.set_contact_alias(ctx) == -1
    assert ctx.msg.header("contact") == "<tel:+123>"  # bracketed all the same, as before


def test_add_contact_alias_after_hostport() -> None:
    ctx = _ctx("sip:a@192.168.1.10:5061;transport=udp")
    assert contact.add_contact_alias(ctx) == 1
    # a bare addr-spec ends at its first ";": transport is a header parameter here
    assert ctx.msg.header("contact") == "<sip:a@192.168.1.10:5061;alias=203.0.113.7~40000~1>;transport=udp"


@pytest.mark.parametrize(("ruri", "rc", "after", "du"), [
    ("sip:bob@10.0.0.2", 2, "sip:bob@10.0.0.2", None),
    ("sip:bob@10.0.0.2;x=alias", 2, "sip:bob@10.0.0.2;x=alias", None),
    ("sip:bob@10.0.0.2;ALIAS=192.0.2.1~5070~2;lr", 1, "sip:bob@10.0.0.2;lr",
     "sip:192.0.2.1:5070;transport=tcp"),
    ("sip:bob@10.0.0.2;alias=192.0.2.1~5070~1", 1, "sip:bob@10.0.0.2", "sip:192.0.2.1:5070"),
])
def test_handle_ruri_alias(ruri: str, rc: int, after: str, du: str | None) -> None:
    ctx = _ctx(None)
    ctx.msg.set_ruri(ruri)
    assert contact.handle_ruri_alias(ctx) == rc
    assert ctx.msg.ruri == after
    assert (ctx.dst_uri or None) == du


@pytest.mark.parametrize("before", [
    "sip:a@192.168.1.10:5061", "sip:a@h;expires=60", " sip:a@h , <sip:c@d>", "sip:a@h,sip:c@d",
    'sip:a"x@h', "sip:a@h?x=1",
])
def test_a_bare_contact_is_bracketed_and_aliased_in_one_write(before: str) -> None:
    """The alias of a bare addr-spec equals bracketing first, then aliasing the bracketed
    value (the two writes set_contact_alias made before)."""
    ctx = _ctx(before)
    assert contact.set_contact_alias(ctx) == 1
    two = _ctx(before)
    value = two.msg.header("contact") or ""
    start, end, _ = contact._first_uri(value)
    two.msg.set_header_value("contact", f"{value[:start]}<{value[start:end]}>{value[end:]}")
    assert contact.set_contact_alias(two) == 1
    assert ctx.msg.header("contact") == two.msg.header("contact")
