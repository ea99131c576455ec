"""sanity_check on kemi and on Kamailio 5.6, same config, same malformed requests: same replies."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, side_by_side
from kemi_core.testing import request_text as request

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("sanity.so", "siputils.so"), reason="Kamailio 5.6 is not installed")]

#: (msg_checks, uri_checks) pairs the config tries, chosen by the X-A / X-B headers.
COMBOS = [("17895", "7"), ("1511", "7"), ("3047", "7"), ("17604", "6"), ("1024", "8"),
          ("4096", "7"), ("2048", "7"), ("8192", "7"), ("512", "7"), ("32", "7"), ("64", "7"),
          ("128", "7"), ("256", "7"), ("2", "7")]

CFG = cfg_preamble("sl", "pv", "xlog", "sanity") + """modparam("sanity", "autodrop", AUTODROP)
request_route {
  if ($hdr(X-A) == $null) {
    if (!sanity_check()) { xlog("L_NOTICE", "sanity failed\\n"); exit; }
    sl_send_reply("200", "sane");
    exit;
  }
BRANCHES
  sl_send_reply("404", "no such combination");
}
"""
BRANCH = """  if ($hdr(X-A) == "{a}" && $hdr(X-B) == "{b}") {{
    if (!sanity_check("{a}", "{b}")) {{ xlog("L_NOTICE", "sanity failed\\n"); exit; }}
    sl_send_reply("200", "sane");
    exit;
  }}"""


def cases(extra: str) -> list[str]:
    """Requests Kamailio's core passes to the script, and kemi's too: a CSeq number or method
    that is wrong, an empty Call-ID, a From or To that does not parse. (A body shorter than the
    Content-Length kemi refuses before the script, as RFC 4475 3.1.2.2 asks; the octets of a
    datagram past the Content-Length it drops as RFC 3261 18.3 says, so sanity's 128 check
    finds them equal where Kamailio's says "Content-Length mis-match".)"""
    x = extra
    return [
        request(extra=x, cseq="1 INVITE"),
        request(extra=x, cseq="1 options"),
        request(extra=x, cseq="abc OPTIONS"),
        request(extra=x, cseq="2147483648 OPTIONS"),
        request(extra=x, cseq="-1 OPTIONS"),
        request(extra=x, call_id=""),
        request(extra=x, frm="garbage"),
        request(extra=x, to="garbage"),
        request(extra=x),
        request(ruri="http://127.0.0.1/", extra=x),
        request(ruri="tel:+1234", extra=x),
        request(ruri="sip:@", extra=x),
        request(extra=x + "\r\nExpires: abc"),
        request(extra=x + "\r\nExpires: 60"),
        request(extra=x + "\r\nProxy-Require: foo, bar"),
        request(extra=x, frm="<sip:@@>;tag=1"),
        request(extra=x, to="<sip:>"),
        request(extra=x + "\r\nContact: <sip:@>"),
        request(extra=x, to="<sip:u@127.0.0.1>;tag=1;tag=2"),
        request(extra=x, frm="<sip:a@example.com>;tag=1;tag=2"),
        request(extra=x + '\r\nAuthorization: Digest username="a"'),
        request(extra=x + "\r\nAuthorization: Basic abc"),
        request(extra=x + '\r\nAuthorization: Digest username="a", realm="r", nonce="n", '
                          'uri="sip:u@127.0.0.1", response="00112233445566778899aabbccddeeff"'),
    ]


@pytest.mark.parametrize("autodrop", [1, 0])
def test_sanity_replies_match_kamailio(tmp_path: Path, autodrop: int) -> None:
    branches = "\n".join(BRANCH.format(a=a, b=b) for a, b in COMBOS)
    cfg = CFG.replace("BRANCHES", branches).replace("AUTODROP", str(autodrop))
    messages = cases("")
    for a, b in COMBOS:
        messages += cases(f"X-A: {a}\r\nX-B: {b}")
    with side_by_side(cfg, tmp_path) as pair:
        ours, theirs = pair.both(messages, keep=["unsupported"])
    diffs = [(messages[i].split("\r\n")[0], [h for h in messages[i].split("\r\n") if h[:2] == "X-"],
              o, t) for i, (o, t) in enumerate(zip(ours, theirs, strict=True)) if o != t]
    assert not diffs, "\n".join(map(str, diffs))
