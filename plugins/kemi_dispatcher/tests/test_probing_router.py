"""Keepalives offline (kemi_router's clock): the state changes Kamailio 5.6 showed side by side
(mode 1: AX -> AP on an answer, -> IP when fr_timer passes unanswered, IP -> AP again on the
next answer; mode 0: a probing destination is probed once and loses its P either way)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kemi_dispatcher.probing import accepted
from kemi_dispatcher.testing import write_config

TWO = "1 sip:127.0.0.2:5060 0 0\n1 sip:127.0.0.3:5060 0 0\n"


def ping_cfg(tmp_path: Path, mode: int, list_text: str = TWO, more: str = "") -> Path:
    return write_config(tmp_path, list_text,
                        f'modparam("dispatcher", "ds_ping_interval", 2)\n'
                        f'modparam("dispatcher", "ds_probing_mode", {mode})\n{more}')


def flags(router: Any) -> dict[str, str]:
    out = {}
    for rec in router.rpc("dispatcher.list")["RECORDS"]["SET"]:
        for dest in rec["TARGETS"]["DEST"]:
            out[dest["URI"].split(":")[1]] = dest["FLAGS"]
    return out


def pings(out: Any) -> dict[str, Any]:
    return {s.dest.split(":")[1]: s for s in out.sent if s.msg.method == "OPTIONS"}


def test_mode_1_probes_all_and_follows_answers(kemi_router: Any, tmp_path: Path) -> None:
    router = kemi_router(ping_cfg(tmp_path, 1))
    assert router.advance(1.9).sent == []
    first = pings(router.advance(0.2))
    assert set(first) == {"127.0.0.2", "127.0.0.3"}
    msg = first["127.0.0.2"].msg
    assert msg.from_.uri_text == "sip:dispatcher@localhost" and msg.cseq.method == "OPTIONS"
    router.reply(first["127.0.0.2"], 200, "OK")
    assert flags(router) == {"127.0.0.2": "AP", "127.0.0.3": "AX"}
    # .3 never answers: fr_timer (4 s here) after its first keepalive it is down
    router.advance(3.5)
    assert flags(router)["127.0.0.3"] == "AX"
    down = router.advance(0.6)
    assert flags(router)["127.0.0.3"] == "IP"
    assert "dispatcher: destination sip:127.0.0.3:5060 of set 1 down (AX -> IP, keepalive 408)" \
        in down.logs
    # it answers the next keepalive: up again
    nxt = pings(router.advance(2.0))
    router.reply(nxt["127.0.0.3"], 200, "OK")
    assert flags(router)["127.0.0.3"] == "AP"


def test_mode_0_probes_the_p_ones_once(kemi_router: Any, tmp_path: Path) -> None:
    router = kemi_router(ping_cfg(tmp_path, 0, "1 sip:127.0.0.2:5060 8 0\n1 sip:127.0.0.3:5060 8 0\n"
                                                 "1 sip:127.0.0.4:5060 0 0\n"))
    assert flags(router) == {"127.0.0.2": "AP", "127.0.0.3": "AP", "127.0.0.4": "AX"}
    first = pings(router.advance(2.0))
    assert set(first) == {"127.0.0.2", "127.0.0.3"}
    router.reply(first["127.0.0.2"], 200, "OK")
    router.advance(4.0)
    assert flags(router) == {"127.0.0.2": "AX", "127.0.0.3": "IX", "127.0.0.4": "AX"}
    router.advance(10.0)  # keepalives still in flight end (as in Kamailio, one per round)
    assert pings(router.advance(10.0)) == {}


def test_thresholds_and_reply_codes(kemi_router: Any, tmp_path: Path) -> None:
    more = ('modparam("dispatcher", "ds_probing_threshold", 2)\n'
            'modparam("dispatcher", "ds_inactive_threshold", 2)\n'
            'modparam("dispatcher", "ds_ping_reply_codes", "code=404")\n')
    router = kemi_router(ping_cfg(tmp_path, 1, "1 sip:127.0.0.2:5060 0 0\n", more))
    router.reply(pings(router.advance(2.0))["127.0.0.2"], 503, "Busy")
    assert flags(router) == {"127.0.0.2": "TP"}
    router.reply(pings(router.advance(2.0))["127.0.0.2"], 500, "Error")
    assert flags(router) == {"127.0.0.2": "IP"}
    router.reply(pings(router.advance(2.0))["127.0.0.2"], 404, "Not Here")  # accepted code
    assert flags(router) == {"127.0.0.2": "IP"}
    router.reply(pings(router.advance(2.0))["127.0.0.2"], 200, "OK")
    assert flags(router) == {"127.0.0.2": "AP"}


def test_ping_active_stops_and_restarts_keepalives(kemi_router: Any, tmp_path: Path) -> None:
    router = kemi_router(ping_cfg(tmp_path, 1))
    assert router.rpc("dispatcher.ping_active", 0) == {"NewPingState": 0, "OldPingState": 1}
    assert pings(router.advance(6.0)) == {}
    assert router.rpc("dispatcher.ping_active") == {"OldPingState": 0}
    router.rpc("dispatcher.ping_active", 1)
    assert set(pings(router.advance(2.0))) == {"127.0.0.2", "127.0.0.3"}


def test_accepted_codes() -> None:
    assert accepted(200, ())
    assert not accepted(202, ())
    assert accepted(202, (("class", 2),))
    assert accepted(403, (("code", 403),))
    assert not accepted(408, (("class", 2), ("code", 403)))
