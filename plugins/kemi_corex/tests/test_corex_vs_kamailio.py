"""corex on kemi and on Kamailio 5.6: the same native config, the same requests; return codes
and variables come back in reply headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, side_by_side
from kemi_core.testing import request_text as request

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("corex.so", "textops.so"), reason="Kamailio 5.6 is not installed")]

CALLS = [
    'setxflag("3"); isxflagset("3")', 'setxflag("3"); resetxflag("3"); isxflagset("3")',
    'isxflagset("4")', 'setxflag("70")',
    'set_send_socket("udp:127.0.0.1:{port}")', 'set_send_socket("udp:10.9.9.9:5060")',
    'is_socket_name("nope")', 'msg_iflag_set("UAC_AUTH"); msg_iflag_is_set("UAC_AUTH")',
    'msg_iflag_is_set("USE_UAC_TO")',
    'file_write("{dir}/f.txt", "data $rm"); file_read("{dir}/f.txt", "$var(x)")',
    'file_read("{dir}/missing.txt", "$var(x)")',
    'is_faked_msg()',
]

CFG = cfg_preamble("sl", "pv", "textops", "corex") + """request_route {
  $var(x) = "none";
BRANCHES
  sl_send_reply("404", "no such call");
}
"""
CALL = """  if ($hdr(X-F) == "{n}") {{
    {call};
    $var(r) = $rc;
    append_to_reply("X-R: $var(r) $var(x)\\r\\n");
    sl_send_reply("200", "OK");
    exit;
  }}"""


def test_corex_functions_match_kamailio(tmp_path: Path) -> None:
    cfg = CFG.replace("BRANCHES", "\n".join(CALL.format(n=i, call=c) for i, c in enumerate(CALLS)))
    messages, labels = [], []
    for i, call in enumerate(CALLS):
        for ruri, ua in (("sip:u@127.0.0.1", "User-Agent: x"), ("sip:127.0.0.1", "")):
            messages.append(request(ruri=ruri, extra=f"X-F: {i}\r\n{ua}"))
            labels.append((call, ruri, ua))
    with side_by_side(cfg, tmp_path) as pair:
        ours, theirs = pair.both(messages, keep=["x-r"])
    diffs = [f"{labels[i]}: kemi {o} / kamailio {t}"
             for i, (o, t) in enumerate(zip(ours, theirs, strict=True)) if o != t]
    assert not diffs, f"{len(diffs)} differences:\n" + "\n".join(diffs)
