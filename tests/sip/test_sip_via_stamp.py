"""kemi_core.sip.via_stamp: ;received and ;rport= where Kamailio 5.6 writes them. The expected
texts are what Kamailio sent in tests/e2e/test_via_stamps_vs_kamailio.py's runs (source
127.0.0.1:5555); that test compares the two servers live."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kemi_core.sip import build_reply, parse_datagram, reply_top_via
from kemi_core.sip.headers import parse_via
from kemi_core.sip.via_stamp import forwarded_via, reply_via, reply_via_py

SRC, PORT = "127.0.0.1", 5555
B = ";branch=z9hG4bK-1"

FORWARDED = [  # (Via after "SIP/2.0/UDP ", force_rport, what is sent on; None: unchanged)
    ("127.0.0.1:5555" + B, False, None),
    ("127.0.0.1:5999" + B, False, None),
    ("10.1.1.1:5070" + B, False, "10.1.1.1:5070;received=127.0.0.1" + B),
    ("host.example.com:5070" + B, False, "host.example.com:5070;received=127.0.0.1" + B),
    ("127.0.0.1:5555;rport" + B, False, "127.0.0.1:5555;received=127.0.0.1;rport=5555" + B),
    ("10.1.1.1:5070;rport=1234" + B, False, "10.1.1.1:5070;received=127.0.0.1;rport=5555" + B),
    ("10.1.1.1:5070;x=1;rport;y=2" + B, False,
     "10.1.1.1:5070;received=127.0.0.1;x=1;rport=5555;y=2" + B),
    ("127.0.0.1:5555;received=127.0.0.1" + B, False, None),
    ("127.0.0.1:5555;x=1;received=10.9.9.9;y" + B, False,
     "127.0.0.1:5555;x=1;received=127.0.0.1;y" + B),
    ("10.1.1.1:5070;received=10.9.9.9;rport" + B, False,
     "10.1.1.1:5070;received=127.0.0.1;rport=5555" + B),
    ("127.0.0.1:5555 ; rport ; x = 1" + B, False,
     "127.0.0.1:5555 ;received=127.0.0.1;rport=5555; x = 1" + B),
    ('127.0.0.1:5555;x="a;b";rport' + B, False,
     '127.0.0.1:5555;received=127.0.0.1;x="a;b";rport=5555' + B),
    ("[::1]:5070;rport" + B, False, "[::1]:5070;received=127.0.0.1;rport=5555" + B),
    ("127.0.0.1:5555" + B, True, "127.0.0.1:5555;rport=5555" + B),
    ("10.1.1.1:5070" + B, True, "10.1.1.1:5070;rport=5555;received=127.0.0.1" + B),
    ("10.1.1.1:5070;received=10.9.9.9" + B, True,
     "10.1.1.1:5070;rport=5555;received=127.0.0.1" + B),
    ("127.0.0.1:5555;x=1;received=10.9.9.9;y" + B, True,
     "127.0.0.1:5555;x=1;rport=5555;received=127.0.0.1;y" + B),
    ("127.0.0.1:5555;rport=1234" + B, True, "127.0.0.1:5555;received=127.0.0.1;rport=5555" + B),
]

REPLIED = [  # (Via, force_rport, what the reply made here carries)
    ("127.0.0.1:5555" + B, False, None),
    ("127.0.0.1:5555;rport" + B, False, "127.0.0.1:5555;rport=5555" + B + ";received=127.0.0.1"),
    ("10.1.1.1:5070;x=1;rport;y=2" + B, False,
     "10.1.1.1:5070;x=1;rport=5555;y=2" + B + ";received=127.0.0.1"),
    ("127.0.0.1:5555;received=127.0.0.1" + B, False,
     "127.0.0.1:5555;received=127.0.0.1" + B + ";received=127.0.0.1"),
    ("10.1.1.1:5070;received=10.9.9.9;rport" + B, False,
     "10.1.1.1:5070;received=10.9.9.9;rport=5555" + B + ";received=127.0.0.1"),
    ("127.0.0.1:5555 ; rport ; x = 1" + B, False,
     "127.0.0.1:5555 ;rport=5555; x = 1" + B + ";received=127.0.0.1"),
    ('127.0.0.1:5555;x="a;b";rport' + B, False,
     '127.0.0.1:5555;x="a;b";rport=5555' + B + ";received=127.0.0.1"),
    ("127.0.0.1:5999" + B, True, "127.0.0.1:5999" + B + ";rport=5555"),
    ("host.example.com:5070" + B, True,
     "host.example.com:5070" + B + ";rport=5555;received=127.0.0.1"),
    ("10.1.1.1:5070;rport=1234" + B, True,
     "10.1.1.1:5070;rport=5555" + B + ";received=127.0.0.1"),
]


def stamp(fn: object, via: str, forced: bool) -> str | None:
    raw = "SIP/2.0/UDP " + via
    out = fn(raw, parse_via(raw).host, SRC, PORT, forced)  # type: ignore[operator]
    return None if out is None else out.removeprefix("SIP/2.0/UDP ")


@pytest.mark.parametrize(("via", "forced", "sent"), FORWARDED)
def test_forwarded_via(via: str, forced: bool, sent: str | None) -> None:
    assert stamp(forwarded_via, via, forced) == sent


@pytest.mark.parametrize(("via", "forced", "replied"), REPLIED)
def test_reply_via(via: str, forced: bool, replied: str | None) -> None:
    assert stamp(reply_via, via, forced) == replied


PARAMS = [";branch=z9hG4bK1", ";rport", ";rport=5062", ";received=1.2.3.4", ";received", ";RPORT",
          ";Received=9.9.9.9", ";x=y", ";rport=", "; rport", ";rport ", ";Rport", ";xrport",
          ";rportx", ';x="a;rport"', ";branch=z9hG4bKrport", ";x=received", " ;rport", ";"]


@settings(max_examples=500, deadline=None)
@given(host=st.sampled_from(["127.0.0.1", "10.0.0.7", "rport.example.com", "[::1]"]),
       params=st.lists(st.sampled_from(PARAMS), max_size=4), forced=st.booleans(),
       src=st.sampled_from(["127.0.0.1", "10.0.0.7", "::1"]))
def test_reply_via_usual_steps_are_the_reference(host: str, params: list[str], forced: bool,
                                                src: str) -> None:
    """reply_via's few steps for the usual Via answer what the general form answers (also for
    texts the parser would refuse: both forms read only the text)."""
    raw = f"SIP/2.0/UDP {host}:5061{''.join(params)}"
    assert reply_via(raw, host, src, PORT, forced) == reply_via_py(raw, host, src, PORT, forced)


def test_reply_via_usual_steps_taken() -> None:
    """The usual Via of a UAC asking for rport is answered by the few steps (the reference is
    not called), and a near miss is not."""
    import kemi_core.sip.via_stamp as vs
    calls: list[str] = []
    real = vs.reply_via_py

    def counted(raw: str, *args: object) -> str | None:
        calls.append(raw)
        return real(raw, *args)  # type: ignore[arg-type]

    vs.reply_via_py = counted  # type: ignore[assignment]
    try:
        usual = "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-2;rport"
        assert reply_via(usual, "127.0.0.1", SRC, PORT, False) == (
            "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1-2;rport=5555;received=127.0.0.1")
        assert calls == []
        near = "SIP/2.0/UDP 127.0.0.1:5061;rport;branch=z9hG4bKrport"
        assert reply_via(near, "127.0.0.1", SRC, PORT, False) == (
            "SIP/2.0/UDP 127.0.0.1:5061;rport=5555;branch=z9hG4bKrport;received=127.0.0.1")
        assert calls == [near]
    finally:
        vs.reply_via_py = real  # type: ignore[assignment]


def test_a_reply_carries_the_stamped_top_via_only() -> None:
    """build_reply's top_via replaces the first value of a joined Via line; the other Vias stay."""
    msg = parse_datagram(b"OPTIONS sip:u@h SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1;rport;branch=z9hG4bK1"
                         b", SIP/2.0/UDP 10.0.0.7;branch=z9hG4bK2\r\nVia: SIP/2.0/TCP 10.0.0.8"
                         b";branch=z9hG4bK3\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:u@h>\r\n"
                         b"Call-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n")
    top = reply_top_via(msg, SRC, PORT, False)
    assert top == "SIP/2.0/UDP 10.1.1.1;rport=5555;branch=z9hG4bK1;received=127.0.0.1"
    lines = build_reply(msg, 200, "OK", "t", top_via=top).decode().split("\r\n")
    assert lines[1] == f"Via: {top}, SIP/2.0/UDP 10.0.0.7;branch=z9hG4bK2"
    assert lines[2] == "Via: SIP/2.0/TCP 10.0.0.8;branch=z9hG4bK3"
    assert reply_top_via(msg, "10.1.1.1", 5060, False) is not None  # (;rport: always stamped)
    plain = parse_datagram(b"OPTIONS sip:u@h SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5555;branch=z9"
                           b"hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:u@h>\r\nCall-ID: c\r\n"
                           b"CSeq: 1 OPTIONS\r\n\r\n")
    assert reply_top_via(plain, SRC, PORT, False) is None
