"""dispatcher's control commands through kamcmd on kemi and on Kamailio 5.6, one config and one
list file: the same text (set order, destination order, flags, attributes, words)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kemi_core.testing.cluster import kamailio_cluster_available

REASON = kamailio_cluster_available()

LIST = """\
# sets in this order: Kamailio lists them as its AVL tree's post-order
3 sip:127.0.0.6:5060 0 1
1 sip:127.0.0.2:5060 0 0 duid=a;weight=30;socket=udp:127.0.0.1:5060
1 sip:127.0.0.3:5060 8 5 duid=b;maxload=10;weight=20
2 sip:127.0.0.4:5070;transport=tcp 0 0
1 sip:127.0.0.5:5060 4 0
3 sip:127.0.0.7:5060 0 3
"""

COMMANDS = [
    ("dispatcher.list",),
    ("dispatcher.set_state", "ip", "1", "sip:127.0.0.2:5060"),
    ("dispatcher.list",),
    ("dispatcher.set_state", "x", "1", "all"),
    ("dispatcher.set_state", "a", "1", "sip:10.9.9.9"),
    ("dispatcher.ping_active",),
    ("dispatcher.ping_active", "0"),
    ("dispatcher.hash", "3", "alice", "example.com"),
]


@pytest.mark.skipif(REASON is not None, reason=REASON or "")
def test_rpc_answers_as_kamailio(make_node: Any, tmp_path: Path) -> None:
    ds_list = tmp_path / "dispatcher.list"
    ds_list.write_text(LIST)
    answers: dict[str, list[str]] = {}
    for engine in ("kamailio", "kemi"):
        node = make_node(f"d-{engine}", engine, "127.0.0.1", "dispatcher", list=ds_list)
        node.cfg.write_text(node.cfg.read_text().replace(
            'modparam("dispatcher", "ds_ping_interval", 1)', ""))  # states stay as set
        node.start()
        answers[engine] = [node.kamcmd(*cmd).strip() for cmd in COMMANDS]
        node.stop()
    for cmd, ours, theirs in zip(COMMANDS, answers["kemi"], answers["kamailio"], strict=True):
        assert ours == theirs, f"{' '.join(cmd)}:\nkemi:\n{ours}\nkamailio:\n{theirs}"
