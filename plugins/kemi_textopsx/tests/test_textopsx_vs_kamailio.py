"""textopsx on kemi and on Kamailio 5.6: fnmatch, keep_hf, remove_body and msg_apply_changes,
their results and the message they leave, compared; the header iterators on real SIP bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.testing import cfg_preamble, kamailio_available, request_text, side_by_side

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not kamailio_available("textopsx.so", "textops.so"), reason="Kamailio 5.6 is not installed")]

CALLS = [
    # (fnmatch's "i" flag is not compared: Kamailio 5.6.3 ignores it and matches case-sensitively;
    # kemi follows the module's documentation, a case-insensitive match: see the test below.)
    'fnmatch("$rU", "12*")', 'fnmatch("$rU", "AB?")',
    "msg_apply_changes()",
    'remove_body(); msg_apply_changes(); $var(x) = $cl',
    'keep_hf("X-Keep"); msg_apply_changes(); $var(x) = $hdr(X-Keep) + "/" + $hdr(X-Drop)',
]

CFG = cfg_preamble("sl", "pv", "textops", "textopsx") + """request_route {
  $var(x) = "none";
BRANCHES
  sl_send_reply("404", "no such call");
}
"""
CALL = """  if ($hdr(X-F) == "{n}") {{
    {call};
    $var(r) = $rc;
    append_to_reply("X-R: $var(r) [$var(x)]\\r\\n");
    sl_send_reply("200", "OK");
    exit;
  }}"""


def test_textopsx_matches_kamailio(tmp_path: Path) -> None:
    cfg = CFG.replace("BRANCHES", "\n".join(CALL.format(n=i, call=c) for i, c in enumerate(CALLS)))
    messages, labels = [], []
    for i, call in enumerate(CALLS):
        for user in ("123", "ABC", "abc"):
            messages.append(request_text("MESSAGE", ruri=f"sip:{user}@127.0.0.1", body="hello",
                                         extra=f"X-F: {i}\r\nX-Keep: k\r\nX-Drop: d"))
            labels.append((call, user))
    with side_by_side(cfg, tmp_path) as pair:
        ours, theirs = pair.both(messages, keep=["x-r"])
    diffs = [f"{labels[i]}: kemi {o} / kamailio {t}"
             for i, (o, t) in enumerate(zip(ours, theirs, strict=True)) if o != t]
    assert not diffs, f"{len(diffs)} differences:\n" + "\n".join(diffs)


def test_header_iterators_walk_the_headers() -> None:
    import kemi_textopsx as tx
    from kemi_core.testing import context, offline_core

    core, _ = offline_core(("textopsx", tx))
    ctx = context(core, request_text(extra="X-A: 1").replace("PORT", "5070"))
    assert tx.hf_iterator_next(ctx, "i") == -1  # not started
    assert tx.hf_iterator_start(ctx, "i") == 1
    names = []
    while tx.hf_iterator_next(ctx, "i") > 0:
        names.append((tx.hf_iterator_hname(ctx, "i"), tx.hf_iterator_hbody(ctx, "i")))
    assert names[0][0] == "Via" and ("X-A", "1") in names
    assert tx.hf_iterator_prev(ctx, "i") == 1
    assert tx.hf_iterator_hname(ctx, "i") == "Content-Length"
    assert tx.hf_iterator_end(ctx, "i") == 1 and tx.hf_iterator_hname(ctx, "i") is None
    for n in "abcd":
        assert tx.hf_iterator_start(ctx, n) == 1
    assert tx.hf_iterator_start(ctx, "e") == -1  # four at a time, as Kamailio


def test_fnmatch_i_flag_is_case_insensitive() -> None:
    import kemi_textopsx as tx
    from kemi_core.testing import context, offline_core

    core, _ = offline_core(("textopsx", tx))
    ctx = context(core, request_text().replace("PORT", "5070"))
    assert tx.fnmatch_ex(ctx, "ABC", "ab?", "i") == 1
    assert tx.fnmatch_ex(ctx, "ABC", "ab?", "") == -1
