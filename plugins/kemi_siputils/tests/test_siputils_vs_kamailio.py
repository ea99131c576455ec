"""siputils on kemi and on Kamailio 5.6: one native config calls each function on the same
requests; the return codes (and the R-URI after an edit) come back in reply headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, side_by_side
from kemi_core.testing import request_text as request

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("siputils.so", "textops.so"), reason="Kamailio 5.6 is not installed")]

CALLS = [
    "has_totag()", "is_request()", "is_reply()", "is_first_hop()", "is_first_hop(1)",
    'uri_param("foo")', 'uri_param("foo", "bar")', 'uri_param_any("foo")',
    'is_uri("$hdr(X-V)")', 'is_numeric("$hdr(X-V)")', 'is_alphanum("$hdr(X-V)")',
    'is_alphanumex("$hdr(X-V)", "+.-_")', 'is_tel_number("$hdr(X-V)")', 'is_e164("$hdr(X-V)")',
    'is_uri_user_e164("$hdr(X-V)")', 'cmp_uri("$ru", "$hdr(X-V)")', 'cmp_aor("$ru", "$hdr(X-V)")',
    'cmp_hdr_name("$hdr(X-V)", "From")', "is_gruu()", 'is_supported("path")',
    'is_supported("outbound")',
]
EDITS = ['add_uri_param("nat=yes")', 'uri_param_rm("foo")', 'uri_param_rm("lr")']

CFG = cfg_preamble("sl", "pv", "textops", "siputils") + """request_route {
  if ($hdr(X-F) == "options") { options_reply(); exit; }
BRANCHES
  sl_send_reply("404", "no such call");
}
"""
CALL = """  if ($hdr(X-F) == "{n}") {{
    {call};
    $var(r) = $rc;
    append_to_reply("X-R: $var(r)\\r\\n");
    append_to_reply("X-U: $ru\\r\\n");
    sl_send_reply("200", "OK");
    exit;
  }}"""

VALUES = ["", "12345", "+4930123456", "+1", "abc123", "a.b-c_d", "sip:u@127.0.0.1",
          "sip:U@127.0.0.1;foo=bar", "sip:u@127.0.0.1:5060", "tel:+123", "sip:@", "from", "f",
          "To", "sip:u@127.0.0.1;user=phone", "<sip:x>"]
RURIS = ["sip:u@127.0.0.1", "sip:u@127.0.0.1;foo", "sip:u@127.0.0.1;foo=bar;lr",
         "sip:u@127.0.0.1;gr=urn:uuid:1", "sip:u@127.0.0.1;gr", "sip:127.0.0.1"]


def test_siputils_functions_match_kamailio(tmp_path: Path) -> None:
    calls = CALLS + EDITS
    cfg = CFG.replace("BRANCHES", "\n".join(CALL.format(n=i, call=c) for i, c in enumerate(calls)))
    messages, labels = [], []
    for i, call in enumerate(calls):
        for ruri in RURIS:
            values = VALUES if "X-V" in call else [""]
            for v in values:
                to = "<sip:u@127.0.0.1>;tag=x" if v == "12345" else "<sip:u@127.0.0.1>"
                extra = f"X-F: {i}\r\nX-V: {v}\r\nSupported: path, timer"
                messages.append(request(ruri=ruri, extra=extra, to=to))
                labels.append((call, ruri, v))
    # one Via more: no longer the first hop
    messages.append(request(extra="X-F: 3\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKx"))
    labels.append(("is_first_hop() with 2 Vias", "", ""))
    messages += [request(ruri="sip:127.0.0.1", extra="X-F: options"),
                 request(ruri="sip:u@127.0.0.1", extra="X-F: options")]
    labels += [("options_reply", "no user", ""), ("options_reply", "user", "")]
    keep = ["x-r", "x-u", "accept", "accept-encoding", "accept-language", "supported"]
    with side_by_side(cfg, tmp_path) as pair:
        ours, theirs = pair.both(messages, keep=keep)
    diffs = [f"{labels[i]}: kemi {o.status} {o.headers} / kamailio {t.status} {t.headers}"
             for i, (o, t) in enumerate(zip(ours, theirs, strict=True)) if o != t]
    assert not diffs, f"{len(diffs)} differences:\n" + "\n".join(diffs)
