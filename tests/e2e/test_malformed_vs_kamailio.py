"""Which malformed requests reach the script, on kemi and on Kamailio 5.6 with the same config.

Each request carries a mark in its R-URI user and its Call-ID (whichever the case leaves
alone); the script logs both, so the logs say which requests the script saw, on both servers.
(Not a header of its own: Kamailio's $hdr reads the whole header, which fails on some cases.)

Kamailio reads headers before the script only until it has From, To, Call-ID and CSeq
(kemi_core.runtime.request_gate says what it checks on the way); what it refuses there it
drops, kemi answers 400 (505 for the SIP version). Past those four the script runs on both.
Kept on purpose: kemi refuses a bad or repeated Content-Length, a header line that does not
parse and a method that is not a token wherever they are (its parser frames and reads the
whole message; RFC 3261 and RFC 4475 ask for a 400), where Kamailio runs the script and then
cannot build its reply.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from kemi_core.testing import cfg_preamble, exchange, kamailio_available, side_by_side, wait_until
from kemi_core.testing import request_text as request
from kemi_core.testing.sidebyside import Answer, Pair

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("sl.so", "xlog.so"), reason="Kamailio 5.6 is not installed")]

CFG = cfg_preamble("sl", "pv", "xlog") + """request_route {
  xlog("L_INFO", "script ran for [$ru $ci] $rm $cs $fu $tu\\n");
  sl_send_reply("200", "script $rm");
}
"""

VIA = "Via: SIP/2.0/UDP 127.0.0.1:PORT;branch=z9hG4bK1"

#: Both cores hand these to the script, and its replies are the same.
PASSED = {
    "cseq method other": request(cseq="1 INVITE"), "cseq method case": request(cseq="1 options"),
    "cseq not a number": request(cseq="abc OPTIONS"),
    "cseq too big": request(cseq="2147483648 OPTIONS"), "cseq negative": request(cseq="-1 OPTIONS"),
    "cseq two spaces": request(cseq="1  OPTIONS"), "cseq comma": request(cseq="1 OPTIONS,"),
    "call-id empty": request(call_id=""), "call-id space": request(call_id="a b"),
    "from garbage": request(frm="garbage"), "from empty": request(frm=""),
    "from no >": request(frm="<sip:a@example.com;tag=1"),
    "to no scheme": request(to="garbage"), "to <x>": request(to="<x>"), "to star": request(to="*"),
    "to tag no value": request(to="<sip:u@127.0.0.1>;tag"),
    "to tag empty": request(to="<sip:u@127.0.0.1>;tag="), "to addr-spec": request(to="sip:u@h;tag=x"),
    "to token name": request(to="x <sip:u@h>"), "to http": request(to="http://x"),
    "via lower case": request(via="Via: sip/2.0/udp 127.0.0.1:PORT;branch=z9hG4bK1"),
    "via ttl": request(via=VIA + ";ttl=abc"), "via maddr": request(via=VIA + ";maddr=!!"),
    "via other transport": request(via="Via: SIP/2.0/FOO 127.0.0.1:PORT;branch=z9hG4bK1"),
    # the reply reaches the client only at its source port (nothing listens on port 9)
    "via rport not a port": request(via="Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK1;rport=x"),
    "via rport too big": request(via="Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK1;rport=99999"),
    "max-forwards word": request().replace("Max-Forwards: 70", "Max-Forwards: abc"),
    "no max-forwards": request().replace("Max-Forwards: 70\r\n", ""),
    "trailing space": request().replace(" SIP/2.0\r\n", " SIP/2.0 \r\n", 1),
    "body past length": request(body="abcd", content_length=2),
    "expires word": request(extra="Expires: abc"), "contact garbage": request(extra="Contact: x<<"),
    "r-uri garbage": request(ruri="garbage"), "unknown method": request(method="FOOBAR"),
}

#: Past From, To, Call-ID and CSeq: both scripts run (Kamailio's reply then fails to build).
AFTER_THE_FOUR = {
    "call-id twice": request(extra="Call-ID: second"), "cseq twice": request(extra="CSeq: 2 OPTIONS"),
    "from twice": request(extra="From: <sip:b@example.com>;tag=2"),
    "to twice, bad": request(extra="To: <>"), "max-forwards twice": request(extra="Max-Forwards: 70"),
    "via garbage late": request(extra="Via: garbage"), "via empty late": request(extra="Via:"),
    "cseq early, twice": request(via=VIA + "\r\nCSeq: 3 OPTIONS"),
}

#: Kamailio drops these before the script; kemi answers with this status.
REFUSED = {
    "cseq one word": (request(cseq="OPTIONS"), 400), "cseq blank": (request(cseq=" "), 400),
    "cseq three words": (request(cseq="1 OPTIONS extra"), 400),
    "cseq list": (request(cseq="1 OPTIONS, 2 OPTIONS"), 400),
    "no cseq": (request().replace("CSeq: 1 OPTIONS\r\n", ""), 400),
    "no from": (request().replace("From: <sip:a@example.com>;tag=1\r\n", ""), 400),
    "no to": (request().replace("To: <sip:u@127.0.0.1>\r\n", ""), 400),
    "no call-id": (request(call_id=None), 400), "to empty": (request(to=""), 400),
    "from twice early": (request(via=VIA + "\r\nFrom: <sip:b@x>;tag=2"), 400),
    "to twice early": (request(via=VIA + "\r\nTo: <sip:q@x>"), 400),
    "call-id twice early": (request(via=VIA + "\r\nCall-ID: zz"), 400),
    "max-forwards twice early": (request(via=VIA + "\r\nMax-Forwards: 70\r\nMax-Forwards: 70"), 400),
    "length garbage early": (request(via=VIA + "\r\nContent-Length: x"), 400),
    "to <>": (request(to="<>"), 400), "to no >": (request(to="<sip:x"), 400),
    "to open quote": (request(to='"abc <sip:u@127.0.0.1>'), 400),
    "to empty param": (request(to="<sip:u@127.0.0.1>;;"), 400),
    "to after >": (request(to="<sip:u@h> garbage"), 400), "to words": (request(to="a b c"), 400),
    "to quoted, no <>": (request(to='"x" sip:u@h'), 400), "to two": (request(to="<sip:u@h>,<sip:v@h>"), 400),
    "to tag with space": (request(to="<sip:u@h>;tag=a b"), 400), "to >>": (request(to="<sip:u@h>>"), 400),
    "via garbage": (request(via="Via: garbage"), 400), "via no host": (request(via="Via: SIP/2.0/UDP"), 400),
    "via SIP/3.0": (request(via="Via: SIP/3.0/UDP 127.0.0.1:PORT;branch=z9hG4bK1"), 400),
    "via empty element": (request(via=VIA + ","), 400),
    "second via empty early": (request(via=VIA + "\r\nVia:"), 400),
    "second via garbage early": (request(via=VIA + "\r\nVia: garbage"), 400),
    "via ;;": (request(via=VIA + ";;"), 400),
    "request line two spaces": (request().replace("OPTIONS sip:", "OPTIONS  sip:", 1), 400),
    "SIP/3.0": (request().replace("SIP/2.0\r\n", "SIP/3.0\r\n", 1), 505),
}

#: kemi refuses these before the script (RFC 3261 7.3.1/20.14, RFC 4475 3.1.2), Kamailio runs it.
KEMI_STRICTER = {
    "length garbage": request(body="abcd").replace("Content-Length: 4", "Content-Length: 4x"),
    "length negative": request(body="abcd").replace("Content-Length: 4", "Content-Length: -1"),
    "length twice": request(extra="Content-Length: 0"),
    "line without colon": request(extra="garbageline"), "header name with space": request(extra="X Y: z"),
    "method not a token": request(method="OPT/IONS"),
    "body short of length": request(body="", content_length=50),
}

MARK = re.compile(r"script ran for \[[^]]*?mk(\d+)x")
_marks = itertools.count()


def marked(message: str) -> tuple[int, str]:
    """The message with a new mark in its R-URI user and its Call-ID (where the case left
    the request's own)."""
    n = next(_marks)
    first, rest = message.split("\r\n", 1)
    first = first.replace("u@127.0.0.1", f"mk{n}x@127.0.0.1")
    return n, f"{first}\r\n{rest.replace('Call-ID: sbs-1', f'Call-ID: mk{n}x')}"


def run(pair: Pair, cases: dict[str, str], timeout: float) -> tuple[
        list[Answer], list[Answer], set[str], set[str]]:
    """Send ``cases`` to both servers: their answers, and which of the cases each script saw
    (an ordinary request goes last: once both logged it, every earlier case is in the logs)."""
    names: dict[str, str] = {}
    messages = []
    for name, message in cases.items():
        n, text = marked(message)
        names[str(n)] = name
        messages.append(text)
    end, text = marked(request())
    messages.append(text)
    ours = exchange(pair.kemi_port, messages, timeout=timeout)
    theirs = exchange(pair.kamailio_port, messages, timeout=timeout)
    for server in (pair.kemi, pair.kamailio):
        wait_until(lambda s=server: str(end) in MARK.findall(s.log()), 10.0,  # type: ignore[misc]
                   f"the last request in the log of {server}")
    seen = [{names[n] for n in MARK.findall(s.log()) if n in names}
            for s in (pair.kemi, pair.kamailio)]
    return ours[:-1], theirs[:-1], seen[0], seen[1]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with side_by_side(CFG, tmp_path_factory.mktemp("malformed")) as both:
        yield both


def test_what_kamailio_passes_on_reaches_the_script(pair: Pair) -> None:
    ours, theirs, ran_here, ran_there = run(pair, PASSED, timeout=2.0)
    assert ran_here == ran_there == set(PASSED)
    assert ours == theirs
    assert all(a.status.startswith("SIP/2.0 200 script ") for a in ours), ours


def test_what_follows_the_four_headers_is_the_scripts_business(pair: Pair) -> None:
    ours, _, ran_here, ran_there = run(pair, AFTER_THE_FOUR, timeout=0.5)
    assert ran_here == ran_there == set(AFTER_THE_FOUR)
    assert all(a.status.startswith("SIP/2.0 200 script ") for a in ours), ours


def test_what_kamailio_drops_kemi_answers(pair: Pair) -> None:
    cases = {name: message for name, (message, _) in REFUSED.items()}
    ours, theirs, ran_here, ran_there = run(pair, cases, timeout=0.5)
    assert ran_here == ran_there == set()
    assert [a.code for a in ours] == [code for _, code in REFUSED.values()]
    assert all(a.status == "(no reply)" for a in theirs), theirs


def test_what_kemi_refuses_where_kamailio_runs_the_script(pair: Pair) -> None:
    """Kept on purpose (see the module's docstring)."""
    ours, _, ran_here, ran_there = run(pair, KEMI_STRICTER, timeout=0.5)
    assert ran_here == set() and ran_there == set(KEMI_STRICTER)
    assert [a.code for a in ours] == [400] * len(KEMI_STRICTER), ours


def test_no_worker_died(pair: Pair) -> None:
    log = pair.kemi.log()
    assert "Traceback" not in log and "unexpected error" not in log
    assert exchange(pair.kemi_port, [request()], timeout=2.0)[0].code == 200
