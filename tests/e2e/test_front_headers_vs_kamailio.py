"""Where headers added by the script and the Vias of a request sent on go, side by side with
Kamailio 5.6: Max-Forwards added by maxfwd when absent, insert_hf, record_route() (and its
preset and advertised forms, with add_rr_param before and after), add_sock_hdr and append_hf, each before or after the others, through forward() and t_relay(),
with the sender's Via alone, above another, joined with another on one line, in compact form,
below other headers, stamped with ;received/;rport= or not, and with a body. Kamailio adds the
script's "first header" lines above the request's first header in the order of the calls, puts
its own Via right above the sender's and edits the sender's Via where it is (its line, name
and other values kept). The bytes the next hop receives must be the same from both servers
(our Via's branch aside)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, side_by_side
from kemi_core.testing.sidebyside import sent_on

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("sl.so", "pv.so", "tm.so", "textops.so", "maxfwd.so", "rr.so",
                           "usrloc.so", "registrar.so", "ctl.so"),
    reason="Kamailio 5.6 is not installed")]

ROUTES = r"""
request_route {
  $du = "sip:127.0.0.1:" + $hdr(X-Up);
  if ($hdr(X-Do) == "rr") record_route();
  if ($hdr(X-Do) == "ins") insert_hf("X-A: 1\r\nX-B: 2\r\n");
  if ($hdr(X-Do) == "sock") add_sock_hdr("X-Sock");
  if ($hdr(X-Do) == "app") append_hf("X-A: 1\r\n");
  if ($hdr(X-Do) == "rm") remove_hf("X-Up");
  if ($hdr(X-Do) == "frp") force_rport();
  if ($hdr(X-Do) == "preset") record_route_preset("127.0.0.1:5555");
  if ($hdr(X-Do) == "preset2") record_route_preset("127.0.0.1:5555", "127.0.0.1:5556");
  if ($hdr(X-Do) == "adv") record_route_advertised_address("127.0.0.1:5557");
  if ($hdr(X-Do) == "prm") add_rr_param(";foo=1");
  if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
  if ($hdr(X-Mid) == "subst") subst('/X-Mid: subst/X-Mid: done/');
  if ($hdr(X-Mid) == "repl") replace_all("X-Mid: repl", "X-Mid: done");
  if ($hdr(X-Mid) == "before") insert_hf("X-Q: 5\r\n", "From");
  if ($hdr(X-Mid) == "after") append_hf("X-Q: 5\r\n", "From");
  if ($hdr(X-Then) == "ins") insert_hf("X-C: 3\r\n");
  if ($hdr(X-Then) == "rr") record_route();
  if ($hdr(X-Then) == "app") append_hf("X-D: 4\r\n");
  if ($hdr(X-Then) == "preset") record_route_preset("127.0.0.1:5555");
  if ($hdr(X-Then) == "prm") add_rr_param(";foo=2");
  if ($rU == "fwd") forward(); else t_relay();
  exit;
}
"""
ME = "127.0.0.1:{me}"
#: the sender's Via lines ({n}: the case's number, for a branch of its own)
VIAS = {
    "one": f"Via: SIP/2.0/UDP {ME};branch=z9hG4bK-{{n}}",
    "rport": f"Via: SIP/2.0/UDP {ME};rport;branch=z9hG4bK-{{n}}",
    "two": f"Via: SIP/2.0/UDP {ME};rport;branch=z9hG4bK-{{n}}\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-x",
    "joined": f"Via: SIP/2.0/UDP {ME};rport;branch=z9hG4bK-{{n}}, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-x",
    "compact": f"v: SIP/2.0/UDP {ME};rport;branch=z9hG4bK-{{n}}",
    "apart": f"Via: SIP/2.0/UDP {ME};rport;branch=z9hG4bK-{{n}}\r\nX-Mid: 1\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-x",
}  # fmt: skip
#: (Via, where it goes: first or after the other headers, X-Do, X-Then, body)
SHAPES = [
    ("one", "first", "", "", ""), ("rport", "first", "", "", ""), ("two", "first", "", "", ""),
    ("joined", "first", "", "", ""), ("compact", "first", "", "", ""),
    ("apart", "first", "", "", ""), ("rport", "last", "", "", ""),
    ("rport", "first", "rr", "", ""), ("two", "first", "rr", "ins", ""),
    ("rport", "first", "ins", "rr", ""), ("one", "last", "ins", "", ""),
    ("rport", "first", "sock", "ins", ""), ("rport", "first", "app", "app", ""),
    ("rport", "first", "rm", "", ""), ("one", "first", "frp", "", "hello"),
    ("compact", "last", "rr", "", "hello"),
    # record_route_preset / _advertised_address: ";ftag=..", the params given before, ";lr"
    ("rport", "first", "preset", "", ""), ("one", "first", "preset2", "prm", ""),
    ("rport", "first", "prm", "preset", ""), ("one", "first", "adv", "prm", ""),
]
#: a textops edit between the two top insertions, which kemi makes by rewriting the message's
#: text (and parsing it again): (Via, where, X-Do, X-Mid, X-Then)
MID_SHAPES = [
    ("rport", "first", do, mid, then) for do, then in (("ins", "ins"), ("ins", "rr"), ("rr", "ins"))
    for mid in ("subst", "repl", "before", "after")
] + [("one", "last", "ins", mid, "ins") for mid in ("subst", "before", "after")]
Case = tuple[str, str, str, str, str, str, str, bool]
CASES: list[Case] = [
    (user, via, where, do, "", then, body, mf) for user in ("fwd", "rel")
    for via, where, do, then, body in SHAPES for mf in (False, True)
] + [(user, via, where, do, mid, then, "", mf) for user in ("fwd", "rel")
     for via, where, do, mid, then in MID_SHAPES for mf in (False, True)]


def case_id(case: Case) -> str:
    user, via, where, do, mid, then, body, mf = case
    return "-".join(x for x in (user, via, where, do, mid, then, "body" if body else "",
                                "mf" if mf else "nomf") if x)


def request(case: Case, n: int, me: int, up: int) -> bytes:
    user, via, where, do, mid, then, body, mf = case
    vias = VIAS[via].format(me=me, n=n) + "\r\n"
    others = (f"From: <sip:a@example.com>;tag=1\r\nTo: <sip:{user}@127.0.0.1>\r\n"
              f"Call-ID: front-{n}\r\nCSeq: 1 OPTIONS\r\n" + ("Max-Forwards: 70\r\n" if mf else "")
              + f"X-Up: {up}\r\nX-Do: {do}\r\nX-Mid: {mid}\r\nX-Then: {then}\r\n"
              + ("Content-Type: text/plain\r\n" if body else ""))
    head = vias + others if where == "first" else others + vias
    return (f"OPTIONS sip:{user}@127.0.0.1 SIP/2.0\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def forwarded(port: int) -> dict[str, str]:
    """What the next hop receives for each case, our Via's branch and the ports named."""
    return sent_on(port, lambda me, up: (
        (case_id(case), request(case, n, me, up)) for n, case in enumerate(CASES)))


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    cfg = cfg_preamble("sl", "pv", "tm", "textops", "maxfwd", "rr", "usrloc", "registrar") + ROUTES
    with side_by_side(cfg, tmp_path_factory.mktemp("front")) as pair:
        yield forwarded(pair.kemi_port), forwarded(pair.kamailio_port)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_sent_on_as_kamailio_sends_it(
        both: tuple[dict[str, str], dict[str, str]], case: Case) -> None:
    kemi, kamailio = both
    assert kemi[case_id(case)] == kamailio[case_id(case)]


def test_kamailio_layout_seen(both: tuple[dict[str, str], dict[str, str]]) -> None:
    """The layout this file is about, as Kamailio 5.6 gave it (so that the comparison cannot pass
    on two servers that both changed): Max-Forwards first, ours above the sender's Via."""
    lines = both[1]["rel-two-first-rr-ins-nomf"].split("\r\n")
    assert lines[1:5] == ["Record-Route: <sip:127.0.0.1:SRV;lr;ftag=1>", "Max-Forwards: 10",
                          "X-C: 3", "Via: SIP/2.0/UDP 127.0.0.1:SRV;branch=X"]
    assert lines[5].startswith("Via: SIP/2.0/UDP 127.0.0.1:ME;received=127.0.0.1;rport=ME;")
    assert lines[6] == "Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-x"
