"""The parts of the R-URI, the original R-URI and the destination URI ($rp/$rP, $op/$oP,
$dp/$dP, $rU, $rd, $rz) on kemi and on Kamailio 5.6 with the same config: a missing port is
5060 (5061 only for ;transport=tls, whatever the scheme, tel: included), the protocol is the
;transport= value as written or UDP, and an R-URI with headers still has its parts read.

Left different (kemi's URI parser): an R-URI that does not parse is $null in Kamailio's $ru
and its text in kemi's; urn: URIs and empty parameters (;;) Kamailio reads and kemi does not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, exchange, kamailio_available, request_text, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("sl.so", "pv.so"), reason="Kamailio 5.6 is not installed")]

CFG = cfg_preamble("sl", "pv") + """request_route {
  $du = $hdr(X-D);
  sl_send_reply("200", "r=$rp|$rP|$rU|$rd|$rz o=$op|$oP d=$dp|$dP|$dd");
}
"""

URIS = ["sip:u@h", "sips:u@h", "sips:u@h;transport=tls", "sip:u@h;transport=TLS",
        "sip:u@h;transport=TCP", "sips:h;transport=tcp", "sip:u@h;transport=ws",
        "sip:u@h:5070", "sips:u@h:5061", "sip:u@h;transport=udp", "sip:u@h?x=y"]


def test_uri_parts_match_kamailio(tmp_path: Path) -> None:
    messages = [request_text(ruri=uri, extra=f"X-D: {uri}") for uri in URIS]
    messages += [request_text(ruri=uri, extra="X-D: sip:h") for uri in
                 ("tel:+1234", "tel:+1;phone-context=x", "garbage", "http://127.0.0.1/")]
    with side_by_side(CFG, tmp_path) as pair:
        ours = exchange(pair.kemi_port, messages, timeout=2.0)
        theirs = exchange(pair.kamailio_port, messages, timeout=2.0)
    assert all(a.code == 200 for a in ours), ours
    assert ours == theirs
