"""The write-through update of one contact's row: changed_row names exactly the columns whose
to_row values differ."""

from __future__ import annotations

import itertools

from kemi_usrloc.contact import Contact, changed_row, to_row

BASE = Contact("uloc-1", "alice", "sip:alice@127.0.0.1:5070", 1000, -1, "cid", 1,
               user_agent="ua", socket="udp:127.0.0.1:5060", last_modified=900)
CHANGES = {"c": "sip:alice@10.0.0.1", "expires": 2000, "q": 500, "callid": "other", "cseq": 2,
           "flags": 1, "cflags": 64, "user_agent": "ua2", "received": "sip:1.2.3.4:5",
           "path": "<sip:p;lr>", "socket": None, "methods": 15, "instance": "<urn:x>",
           "reg_id": 1, "server_id": 3, "tcpconn_id": 7, "keepalive": 1,
           "last_modified": 950, "state": 2}


def test_changed_row_is_the_difference_of_the_rows() -> None:
    for n in (0, 1, 2, 4):
        for fields in itertools.combinations(sorted(CHANGES), n):
            after = BASE._replace(**{f: CHANGES[f] for f in fields})
            before_row, after_row = to_row(BASE, "alice", None), to_row(after, "alice", None)
            want = {k: v for k, v in after_row.items() if before_row[k] != v}
            assert changed_row(BASE, after) == want, fields
    assert changed_row(BASE, BASE._replace(q=-1)) == {}
    assert changed_row(BASE, BASE._replace(q=0)) == {"q": 0.0}
