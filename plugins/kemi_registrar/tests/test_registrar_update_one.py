"""update.one (save()'s one-step change) against apply() on many shapes of REGISTER and record."""

from __future__ import annotations

import itertools

from kemi_registrar.request import SAVE_MEMORY_ONLY, SAVE_SINGLE, Binding, Request
from kemi_registrar.update import RC_INSERTED, RC_UPDATED, Rules, apply, one
from kemi_usrloc.contact import Contact

NOW = 1_700_000_000
URI, OTHER = "sip:alice@192.0.2.1:5060", "sip:alice@192.0.2.9:5070"


def _request(b: Binding, callid: str, cseq: int, path: str | None) -> Request:
    return Request(aor="alice", star=False, bindings=(b,), callid=callid, cseq=cseq,
                   user_agent="ua/1", received="sip:198.51.100.7:4000", path=path,
                   path_reply=None, path_unsupported=False, socket="udp:127.0.0.1:5060",
                   cflags=8, max_contacts=1)


def _stored(uri: str, instance: str | None, reg_id: int, cseq: int, q: int,
            expires: int, flags: int) -> Contact:
    return Contact(ruid="uloc-1", aor="alice", c=uri, expires=expires, q=q, callid="call-1",
                   cseq=cseq, flags=flags, path="<sip:edge>", instance=instance,
                   reg_id=reg_id, tcpconn_id=7, keepalive=1, last_modified=NOW - 30, state=1)


def _shapes() -> itertools.product:  # type: ignore[type-arg]
    bindings = [Binding(uri, exp, q, inst, reg, 3)
                for uri, exp, q, (inst, reg) in itertools.product(
                    (URI, OTHER), (1, 3600), (-1, 500),
                    ((None, 0), ("<urn:uuid:1>", 1), ("<urn:uuid:1>", 2)))]
    stored = [None] + [_stored(URI, inst, reg, cseq, q, exp, fl)
                       for (inst, reg), cseq, q, exp, fl in itertools.product(
                           ((None, 0), ("<urn:uuid:1>", 1)), (5, 10), (-1, 1000),
                           (0, NOW - 1, NOW + 60), (0, 1))]
    return itertools.product(bindings, stored, ("call-1", "call-2"), (5, 6, 20),
                             (None, "<sip:edge2>"), (0, 1, 2, 3), (0, SAVE_MEMORY_ONLY,
                                                                   SAVE_SINGLE), (False, True))


def test_one_is_what_apply_does_for_the_usual_register() -> None:
    taken = declined = 0
    for b, cur, callid, cseq, path, mode, flags, desc in _shapes():
        req = _request(b, callid, cseq, path)
        rules = Rules(matching_mode=mode, cseq_delay=20, desc_time_order=desc, server_id=4)
        old = [] if cur is None else [cur]
        got = one(cur, (req, NOW, flags, rules))
        new, outcome = apply(old, req, NOW, flags, rules)
        if got is None:
            declined += 1
            # declined only where apply() does something else than keep one contact
            assert cur is not None
            assert new is None or len(new) != 1 or new[0].ruid != cur.ruid or outcome.rc != \
                RC_UPDATED or outcome.error is not None
            continue
        taken += 1
        assert type(got) is Contact
        assert new is not None and len(new) == 1 and outcome.error is None
        if cur is None:
            assert outcome.rc == RC_INSERTED
            assert got.ruid != new[0].ruid  # each a new ruid; the rest is the same
            assert got._replace(ruid="") == new[0]._replace(ruid="")
        else:
            assert outcome.rc == RC_UPDATED
            assert got == new[0]
    assert taken > 1000 and declined > 1000, (taken, declined)
