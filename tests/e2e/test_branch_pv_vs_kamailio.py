"""$branch(name) (pv module) and $bR on kemi and on Kamailio 5.6, same config, same requests:
reading each attribute of the added branches (by index, negative, [*], a variable index),
assigning them (including what Kamailio refuses or ignores) and removing a branch."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, exchange, kamailio_available, request_text, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("corex.so", "pv.so"), reason="Kamailio 5.6 is not installed")]

CFG = cfg_preamble("sl", "pv", "kex", "corex") + """route[ALL] {
  $var(o) = $var(o) + " c=" + $branch(count) + " u=" + $branch(uri) + " d=" + $branch(dst_uri)
    + " q=" + $branch(q) + " p=" + $branch(path) + " f=" + $branch(flags)
    + " s=" + $branch(send_socket) + " r=" + $branch(ruid) + " i=" + $branch(instance)
    + " a=" + $branch(location_ua) + " bR=" + $bR + " br=" + $br;
}
request_route {
  $var(o) = "";
  route(ALL);
  if ($hdr(X-T) == "empty") { sl_send_reply("200", "$var(o)"); exit; }
  append_branch("sip:b1@example.com", "0.5");
  append_branch("sip:b2@example.com", "1");
  $ru = "sip:r@example.net"; $du = "sip:127.0.0.9:5090";
  append_branch();
  append_branch("sip:b4@example.com", "0");
  setbflag(3, 1);
  route(ALL);
  $var(i) = 2;
  $var(o) = $var(o) + " u1=" + $(branch(uri)[1]) + " um1=" + $(branch(uri)[-1])
    + " u9=" + $(branch(uri)[9]) + " ustar=" + $(branch(uri)[*]) + " uvar=" + $(branch(uri)[$var(i)])
    + " d2=" + $(branch(dst_uri)[2]) + " q1=" + $(branch(q)[1]) + " q2=" + $(branch(q)[2])
    + " f0=" + $(branch(flags)[0]) + " len=" + $(branch(uri)[1]{s.len});
  if ($hdr(X-T) == "read") { sl_send_reply("200", "$var(o)"); exit; }
  $var(o) = "";
  $branch(dst_uri) = "sip:127.0.0.8:5080";
  $(branch(q)[1]) = 300;
  $(branch(path)[1]) = "<sip:p1@example.org;lr>";
  $branch(flags) = 5;
  $(branch(uri)[2]) = "sip:b3new@example.com";
  $branch(ruid) = "ruid-1";
  $branch(instance) = "<urn:uuid:1>";
  $branch(count) = 9;
  $branch(send_socket) = "udp:127.0.0.1:{port}";
  $(branch(send_socket)[1]) = "udp:10.99.99.99:5999";
  route(ALL);
  $var(o) = $var(o) + " q1=" + $(branch(q)[1]) + " p1=" + $(branch(path)[1]) + " s1=" + $(branch(send_socket)[1]);
  if ($hdr(X-T) == "write") { sl_send_reply("200", "$var(o)"); exit; }
  $var(o) = "";
  $(branch(q)[1]) = "0.7";
  $branch(flags) = "7";
  $branch(dst_uri) = 5;
  $(branch(uri)[7]) = "sip:nowhere@example.com";
  $(branch(q)[2]) = $null;
  $branch(path) = $null;
  $branch(flags) = $null;
  $(branch(uri)[-1]) = $null;
  $branch(uri) = $null;
  route(ALL);
  sl_send_reply("200", "$var(o)");
}
"""


def test_branch_pv_matches_kamailio(tmp_path: Path) -> None:
    messages = [request_text(extra=f"X-T: {t}") for t in ("empty", "read", "write", "refused")]
    with side_by_side(CFG, tmp_path) as pair:
        # each server names its own socket: its port is written PORT for the comparison
        ours = [a.status.replace(str(pair.kemi_port), "PORT")
                for a in exchange(pair.kemi_port, messages)]
        theirs = [a.status.replace(str(pair.kamailio_port), "PORT")
                  for a in exchange(pair.kamailio_port, messages)]
    for o, t in zip(ours, theirs, strict=True):
        assert o == t
    # what it comes to, spelled out once
    assert ours[0].endswith("c= u= d= q= p= f= s= r= i= a= bR= br=")
    assert "bR=<sip:b1@example.com>;q=0.5, <sip:b2@example.com>;q=1, sip:r@example.net, " \
           "<sip:b4@example.com>;q=0" in ours[1]
    assert " f0=8 " in ours[1] and " uvar=sip:r@example.net " in ours[1]
