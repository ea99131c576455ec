"""The compiled forms of the usual REGISTER (kemi_core.sip's ul_change_one, reg_one,
reg_contact_value and reg_known_request) against their Python forms on the same inputs."""

from __future__ import annotations

import itertools
import random

import attrs
import pytest

from kemi_core.api import UNCHANGED
from kemi_core.sip import (
    SipMsg,
    parse_datagram,
    reg_contact_value,
    reg_known_request,
    reg_one,
    ul_change_one,
)
from kemi_registrar.params import PARAMS, RegParams
from kemi_registrar.reply import _contact_header_c, contact_header, ok_headers, ok_headers_py
from kemi_registrar.request import (
    _PHONE_HEADERS,
    SAVE_MEMORY_ONLY,
    SAVE_SINGLE,
    Binding,
    RegError,
    Request,
    _callid_cseq,
)
from kemi_registrar.update import ONE, Rules, one
from kemi_usrloc.contact import Contact
from kemi_usrloc.domain import _CHANGE_ONE, _change_one

pytestmark = pytest.mark.skipif(reg_one is None, reason="kemi_core.sip._fast is not built")

NOW = 1_700_000_000
URI, OTHER = "sip:alice@192.0.2.1:5060", "sip:alice@192.0.2.9:5070"


def _request(b: Binding, callid: str, cseq: int, path: str | None,
             received: str | None = "sip:198.51.100.7:4000") -> Request:
    return Request(aor="alice", star=False, bindings=(b,), callid=callid, cseq=cseq,
                   user_agent="ua/1", received=received, path=path, path_reply=None,
                   path_unsupported=False, socket="udp:127.0.0.1:5060", cflags=8,
                   max_contacts=1)


def _stored(uri: str, instance: str | None, reg_id: int, cseq: int, q: int,
            expires: int, flags: int, callid: str = "call-1") -> Contact:
    return Contact(ruid="uloc-1", aor="alice", c=uri, expires=expires, q=q, callid=callid,
                   cseq=cseq, flags=flags, path="<sip:edge>", instance=instance,
                   reg_id=reg_id, tcpconn_id=7, keepalive=1, last_modified=NOW - 30, state=1)


def _same(a: Contact | None, b: Contact | None) -> None:
    """Equal, and of the same type (an insert's ruid is new each time)."""
    if a is None or b is None:
        assert a is b
        return
    assert type(a) is type(b) is Contact
    assert [type(x) for x in a] == [type(x) for x in b]
    if a.ruid != b.ruid:
        assert a._replace(ruid="") == b._replace(ruid="")
    else:
        assert a == b


def test_reg_one_is_one() -> None:
    bindings = [Binding(uri, exp, q, inst, reg, 3)
                for uri, exp, q, (inst, reg) in itertools.product(
                    (URI, OTHER), (1, 3600), (-1, 500),
                    ((None, 0), ("<urn:uuid:1>", 1), ("<urn:uuid:1>", 2)))]
    stored = [None] + [_stored(URI, inst, reg, cseq, q, exp, fl, callid)
                       for (inst, reg), cseq, q, exp, fl, callid in itertools.product(
                           ((None, 0), ("<urn:uuid:1>", 1)), (5, 10), (-1, 1000),
                           (0, NOW - 1, NOW + 60), (0, 1, 3), ("call-1", "call-2"))]
    refreshed = 0
    for b, cur, callid, cseq, path, mode, flags, received in itertools.product(
            bindings, stored, ("call-1", "call-2"), (5, 6, 20), (None, "<sip:edge2>"),
            (0, 1, 2, 3), (0, SAVE_MEMORY_ONLY, SAVE_SINGLE, SAVE_MEMORY_ONLY | 8),
            (None, "sip:198.51.100.7:4000")):
        req = _request(b, callid, cseq, path, received)
        rules = Rules(matching_mode=mode, cseq_delay=20, desc_time_order=False, server_id=4)
        arg = (req, NOW, flags, rules)
        got, want = ONE(cur, arg), one(cur, arg)
        _same(got, want)
        refreshed += cur is not None and got is not None
    assert refreshed > 1000


def test_reg_one_hands_what_it_does_not_cover_to_the_fallback() -> None:
    seen: list[object] = []

    def fallback(cur: object, arg: object) -> str:
        seen.append(cur)
        return "fallback"

    b = Binding(URI, 60, -1, None, 0, 3)
    rules = Rules(matching_mode=0, cseq_delay=20, desc_time_order=False)
    arg = (_request(b, "call-1", 6, None), NOW, 0, rules)
    cur = _stored(URI, None, 0, 5, -1, NOW + 10, 0)
    assert reg_one(fallback, 1, 1, None, arg) == "fallback"  # an insert
    with_instance = (_request(b._replace(instance="<urn:x>"), "call-1", 6, None), NOW, 0, rules)
    assert reg_one(fallback, 1, 1, cur, with_instance) == "fallback"
    assert reg_one(fallback, 1, 1, cur, (arg[0], NOW, 0, Rules(1, 20, False))) == "fallback"
    assert reg_one(fallback, 1, 1, cur, (arg[0], NOW, 2**70, rules)) == "fallback"
    # (a mode no C long holds is not 0: the Python path, without an error left set)
    huge_mode = Rules(matching_mode=2**70, cseq_delay=20, desc_time_order=False)
    assert reg_one(fallback, 1, 1, cur, (arg[0], NOW, 0, huge_mode)) == "fallback"
    assert seen == [None, cur, cur, cur, cur]
    made = reg_one(fallback, 1, 1, cur, arg)
    assert made == one(cur, arg) and len(seen) == 5


def _fn(keep: bool):  # type: ignore[no-untyped-def]
    def fn(old: Contact | None, arg: int) -> Contact | None:
        if not keep:
            return None
        base = old if old is not None else _stored(URI, None, 0, 1, -1, 0, 0)
        return base._replace(cseq=base.cseq + arg)
    return fn


def test_ul_change_one_is_change_one() -> None:
    t = tuple(_stored(URI, None, 0, 5, -1, NOW + 10, 0))
    for raw, keep in itertools.product((None, [], [t], [t, t], [t, t, t]), (False, True)):
        fn_arg = (_fn(keep), 3)
        got, want = _CHANGE_ONE(raw, fn_arg), _change_one(raw, fn_arg)
        assert got == want
        assert got[0] is UNCHANGED or type(got[0][0]) is tuple
        if got[1] is not None:
            assert [type(x) for x in got[1]] == [type(x) for x in want[1]]
    assert ul_change_one is not None
    with pytest.raises(ZeroDivisionError):
        ul_change_one(UNCHANGED, Contact, [t], (lambda old, arg: 1 // 0, None))


def _params(received_param: str, **more: object) -> RegParams:
    """The module's defaults (params.read without a core), with ``received_param``."""
    names = {f.name for f in attrs.fields(RegParams)}
    values = {name: default for name, _kind, default, _doc in PARAMS if name in names}
    return RegParams(**{**values, "received_param": received_param, **more})


def test_reg_contact_value_is_contact_header() -> None:
    rnd = random.Random(14)
    params = {name: _params(name) for name in ("received", "")}
    for _ in range(5000):
        contacts = [
            _stored(rnd.choice((URI, OTHER, "sip:x@[2001:db8::1]")), None, 0, 1,
                    rnd.choice((-1, 0, 1, 5, 10, 100, 500, 999, 1000, 1234)),
                    rnd.choice((0, NOW - 5, NOW, NOW + 1, NOW + 3600)), 0)._replace(
                received=rnd.choice((None, "", "sip:198.51.100.7:4000")),
                instance=rnd.choice((None, "", "<urn:uuid:1>")),
                reg_id=rnd.choice((0, 1, 7)))
            for _ in range(rnd.randint(0, 4))]
        now = rnd.choice((NOW, NOW + 0.5, float(NOW)))
        p = params[rnd.choice(("received", ""))]
        assert _contact_header_c(contacts, now, p) == contact_header(contacts, now, p)
    assert reg_contact_value is not None
    with pytest.raises(TypeError):
        reg_contact_value([("not", "a", "contact")], NOW, "received", str)


def test_reg_ok_headers_is_ok_headers() -> None:
    rnd = random.Random(20)
    assert ok_headers is not ok_headers_py
    params = [_params(rp, flow_timer=ft, date_header=dh)
              for rp, ft, dh in itertools.product(("received", ""), (0, 30), (False, True))]
    for i in range(3000):
        contacts = [_stored(rnd.choice((URI, OTHER)), rnd.choice((None, "<urn:uuid:2>")), 0, 1,
                            rnd.choice((-1, 0, 500, 1000)),
                            rnd.choice((0, NOW - 5, NOW + 1, NOW + 3600)), 0)
                    for _ in range(rnd.randint(0, 3))]
        now = NOW + i // 1000 + rnd.choice((0, 0.25))  # (a new second for the Date now and then)
        p = rnd.choice(params)
        path = rnd.choice((None, "", "<sip:edge;lr>"))
        assert ok_headers(contacts, now, p, path) == ok_headers_py(contacts, now, p, path)


def _register(call_id: str | None = "call-1@host", cseq: str | None = "7 REGISTER",
              contact: str = "<sip:alice@192.0.2.1:5060>") -> bytes:
    lines = ["REGISTER sip:example.com SIP/2.0",
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1",
             "From: <sip:alice@example.com>;tag=1", "To: <sip:alice@example.com>",
             f"Contact: {contact}", "Expires: 3600", "User-Agent: phone/1", "Max-Forwards: 70"]
    if call_id is not None:
        lines.append(f"Call-ID: {call_id}")
    if cseq is not None:
        lines.append(f"CSeq: {cseq}")
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


TAIL = (None, False, 0, None, "udp", "127.0.0.1", 5060)
KNOWN = (("alice", False, (Binding("sip:alice@192.0.2.1:5060", 3600, -1, None, 0, -1),)),
         ("phone/1", None, None, None, False, "udp:127.0.0.1:5060"), 0)


def _rebuilt(msg: SipMsg, bflags: int) -> Request:
    """parse_request's rebuild of a known request, written out."""
    head, middle, last = KNOWN
    return Request(*head, msg.call_id, msg.cseq.number, *middle, bflags, last)


def test_reg_known_request_is_the_python_rebuild() -> None:
    assert reg_known_request is not None
    for data in (_register(), _register(call_id="x" * 255), _register(cseq="1 REGISTER")):
        msg = parse_datagram(data)
        known = {(msg.lines_of(_PHONE_HEADERS), *TAIL): KNOWN}
        for bflags in (0, 5):
            got = reg_known_request(msg, TAIL, bflags, known, _PHONE_HEADERS, Request)
            assert type(got) is Request and got == _rebuilt(msg, bflags)
        # another phone's lines, another socket: not known
        other = {(msg.lines_of(_PHONE_HEADERS), *TAIL[:-1], 5070): KNOWN}
        assert reg_known_request(msg, TAIL, 0, other, _PHONE_HEADERS, Request) is None
    msg = parse_datagram(_register(contact="<sip:alice@192.0.2.2:5060>"))
    assert reg_known_request(msg, TAIL, 0, {(msg.lines_of(frozenset({"to"})), *TAIL): KNOWN},
                             _PHONE_HEADERS, Request) is None


def test_reg_known_request_leaves_bad_call_ids_and_cseqs_to_python() -> None:
    """parse_request's Python path raises Kamailio's errors for these: the compiled one
    declines them, with no error left set."""
    assert reg_known_request is not None
    for data in (_register(call_id="x" * 256), _register(call_id=None), _register(cseq=None),
                 _register(cseq="x REGISTER")):
        msg = parse_datagram(data)
        known = {(msg.lines_of(_PHONE_HEADERS), *TAIL): KNOWN}
        assert reg_known_request(msg, TAIL, 0, known, _PHONE_HEADERS, Request) is None
        with pytest.raises(RegError):
            _callid_cseq(msg)
