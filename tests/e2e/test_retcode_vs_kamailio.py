"""Native routes: what ``$var(x) = f();`` stores, on kemi and on Kamailio 5.6 (same config).

Kamailio stores the return code of a call assigned alone (also once its optimiser has dropped
neutral operands such as ``+ 0`` or ``&& 1``); any other use of a call in an expression, a
condition, ``switch`` or ``return`` counts it as 1 or 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, request_text, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("textops.so", "maxfwd.so"), reason="Kamailio 5.6 is not installed")]

#: name -> expression assigned to $var(name); the reply's reason lists every value.
VALUES = {
    "a": 'is_method("INVITE")', "b": 'is_method("OPTIONS")', "c": 'mf_process_maxfwd_header("10")',
    "d": 'is_method("INVITE") + 5', "e": '!is_method("INVITE")', "f": '(is_method("INVITE"))',
    "g": 'is_method("INVITE") && 1', "h": 'is_method("INVITE") || 0', "i": '0 + is_method("INVITE")',
    "j": 'is_method("INVITE") * 1', "k": '-is_method("INVITE")', "l": 'is_method("INVITE") == -1',
    "m": 'search("^X-None: ")', "n": "route(R)", "o": '0 - is_method("INVITE")',
    "p": '(int)is_method("INVITE")', "q": 'is_method("INVITE") && $var(one)',
}

CFG = cfg_preamble("sl", "pv", "textops", "maxfwd") + """route[R] { return(-3); }
route[Z] { return(0); }
request_route {
  $var(one) = 1;
ASSIGNMENTS
  switch (is_method("INVITE")) {
    case -1: $var(s) = "minus"; break;
    case 0: $var(s) = "zero"; break;
    default: $var(s) = "other";
  }
  if ($hdr(X-Zero) != $null) {
    $var(z) = route(Z);
    sl_send_reply("500", "not ended");
    exit;
  }
  sl_send_reply("200", "REASON s=$var(s) rc=$rc");
}
"""


def test_assigned_calls_store_what_kamailio_stores(tmp_path: Path) -> None:
    cfg = CFG.replace("ASSIGNMENTS", "\n".join(f"  $var({k}) = {v};" for k, v in VALUES.items()))
    cfg = cfg.replace("REASON", " ".join(f"{k}=$var({k})" for k in VALUES))
    messages = [request_text(), request_text().replace("Max-Forwards: 70\r\n", ""),
                request_text(extra="X-Zero: 1")]
    with side_by_side(cfg, tmp_path) as pair:
        ours, theirs = pair.both(messages)
    assert ours == theirs
    assert "a=-1 b=1 c=1" in ours[0].status and "c=2" in ours[1].status  # the point of it all
    assert ours[2].code == 0  # route(Z) returning 0 ends the script in an assignment too
