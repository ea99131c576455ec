"""Pseudo-variables Kamailio's examples and Debian's kamailio.cfg use, on kemi and on Kamailio
5.6 with the same config: $sel(cfg_get.*) (also after cfg.sets over the control socket),
$def/$defn, $time/$utime/$timef/$utimef/$TV, $nh, $fUl/$tUl/$rUl, $stat and a variable index
($(hdr(X)[$var(i)])), $cl ($null without a Content-Length header, even with a body)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, kamcmd, request_text, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("cfg_rpc.so", "kex.so"), reason="Kamailio 5.6 is not installed")]

CFG = cfg_preamble("sl", "pv", "kex", "cfg_rpc") + """#!define FOO "bar"
#!define NUM 42
#!define EMPTY
pstn.gw_ip = "" desc "PSTN GW Address"
pstn.gw_port = 5060 desc "PSTN GW Port"
request_route {
  if ($hdr(X-T) == "sel") {
    if (strempty($sel(cfg_get.pstn.gw_ip))) { $var(a) = "empty"; } else { $var(a) = "set"; }
    $var(o) = "ip=" + $sel(cfg_get.pstn.gw_ip) + " port+1=" + ($sel(cfg_get.pstn.gw_port) + 1)
      + " " + $var(a) + " dbg=" + $sel(cfg_get.core.debug);
  } else if ($hdr(X-T) == "def") {
    $var(o) = "def=" + $def(FOO) + " defn=" + ($defn(NUM) + 1) + " e=[" + $def(EMPTY) + "] u="
      + $def(NOPE) + " un=" + $defn(NOPE) + " dn=" + $defn(FOO);
  } else if ($hdr(X-T) == "time") {
    $var(o) = "mon=" + $time(mon) + " year=" + $time(year) + " wday=" + $time(wday) + " yday="
      + $time(yday) + " umon=" + $utime(mon) + " f=" + $timef(%Y-%m-%d) + " uf=" + $utimef(%Y)
      + " tvs=" + $(TV(s){s.len}) + " same=" + ($TV(s) == $TV(s)) + " Sn=" + $(TV(Sn){s.len})
      + " tsok=" + ($TV(s) - $Ts < 2);
  } else if ($hdr(X-T) == "nh") {
    $var(o) = "u=" + $nh(u) + " U=" + $nh(U) + " d=" + $nh(d) + " p=" + $nh(p) + " P=" + $nh(P);
    $du = "sip:gw@127.0.0.9:5090;transport=tcp";
    $var(o) = $var(o) + " du: u=" + $nh(u) + " p=" + $nh(p) + " P=" + $nh(P);
    $ru = "sips:example.com";
    $du = $null;
    $var(o) = $var(o) + " sips: p=" + $nh(p) + " P=" + $nh(P) + " U=[" + $nh(U) + "] rUl=" + $rUl
      + " fUl=" + $fUl + " tUl=" + $tUl;
  } else if ($hdr(X-T) == "stat") {
    $var(o) = "rcv=" + ($stat(rcv_requests) > 0) + " none=" + $stat(no_such_statistic)
      + " unsupported=" + $stat(unsupported_methods);
  } else if ($hdr(X-T) == "cl") {
    $var(o) = "cl=[" + $cl + "]";
  } else if ($hdr(X-T) == "index") {
    $var(i) = 0;
    $var(o) = "";
    while ($(hdr(X-Multi)[$var(i)]) != $null) {
      $var(o) = $var(o) + $var(i) + ":" + $(hdr(X-Multi)[$var(i)]) + " ";
      $var(i) = $var(i) + 1;
    }
  }
  sl_send_reply("200", "$var(o)");
}
"""

MSGS = [request_text(extra="X-T: sel"), request_text(extra="X-T: def"),
        request_text(extra="X-T: time"),
        request_text(extra="X-T: nh", ruri="sip:Bob@127.0.0.1:5070;transport=udp",
                     frm="<sip:Alice@example.com>;tag=1", to="<sip:u@example.com>"),
        request_text(extra="X-T: stat"),
        request_text(extra="X-T: cl", body="abc"),
        request_text(extra="X-T: cl", body="abc").replace("Content-Length: 3\r\n", ""),
        request_text(extra="X-T: cl").replace("Content-Length: 0\r\n", ""),
        request_text(extra="X-T: index\r\nX-Multi: one\r\nX-Multi: two, three\r\nX-Multi: four")]


def test_pvs_match_kamailio(tmp_path: Path) -> None:
    with side_by_side(CFG, tmp_path) as pair:
        ours, theirs = pair.both(MSGS)
        assert ours == theirs
        assert ours[0].status == "SIP/2.0 200 ip= port+1=50601 empty dbg=2"
        # a custom setting changed over the control socket reads anew in both
        for ctl in (pair.kemi.ctl, pair.kamailio.ctl):
            kamcmd(ctl, "cfg.sets", "pstn", "gw_ip", "10.0.0.1")
        ours, theirs = pair.both(MSGS[:1])
        assert ours == theirs == [ours[0]] and "ip=10.0.0.1 " in ours[0].status
