"""Selections, failover and states offline (kemi_router), each expectation what Kamailio 5.6
answered to the same list, script and messages when run side by side."""

from __future__ import annotations

from typing import Any

from kemi_dispatcher.testing import LIST, Write, invite, options


def reasons(router: Any, msgs: list[str]) -> list[str]:
    return [router.request(m).final.reason for m in msgs]


def test_round_robin_walks_the_set_in_kamailios_order(kemi_router: Any, ds_cfg: Write) -> None:
    router = kemi_router(ds_cfg())
    got = reasons(router, [options(f"c{i}") for i in range(4)])
    assert got[0] == ("rc=1 du=sip:127.0.0.5:5060 x0=sip:127.0.0.5:5060 "
                      "x1=sip:127.0.0.3:5060 x2=sip:127.0.0.2:5060 cnt=3")
    assert [r.split()[1] for r in got] == ["du=sip:127.0.0.5:5060", "du=sip:127.0.0.3:5060",
                                           "du=sip:127.0.0.2:5060", "du=sip:127.0.0.5:5060"]


def test_priority_order_and_next_dst(kemi_router: Any, ds_cfg: Write) -> None:
    router = kemi_router(ds_cfg())
    got = router.request(options(set_=3, alg=8, nxt=True)).final.reason
    assert got == ("rc=1 du=sip:127.0.0.7:5060 x0=sip:127.0.0.7:5060 x1=sip:127.0.0.8:5060 "
                   "x2=sip:127.0.0.6:5060 cnt=3"
                   " | next=1 du=sip:127.0.0.8:5060 x0=sip:127.0.0.8:5060 x1=sip:127.0.0.6:5060 cnt=3"
                   " | next=1 du=sip:127.0.0.6:5060 x0=sip:127.0.0.6:5060 cnt=3"
                   " | next=-1 du=sip:127.0.0.6:5060 x0=sip:127.0.0.6:5060 cnt=3")


def test_hash_over_call_id_picks_what_kamailio_picks(kemi_router: Any, ds_cfg: Write) -> None:
    router = kemi_router(ds_cfg())
    got = [r.split()[1] for r in reasons(router, [options(f"call-{i}", alg=0) for i in range(4)])]
    assert got == ["du=sip:127.0.0.5:5060", "du=sip:127.0.0.3:5060", "du=sip:127.0.0.3:5060",
                   "du=sip:127.0.0.2:5060"]


def test_inactive_destinations_are_skipped(kemi_router: Any, ds_cfg: Write) -> None:
    router = kemi_router(ds_cfg())
    assert router.rpc("dispatcher.set_state", "i", 1, "sip:127.0.0.3:5060").startswith("Ok")
    hashed = [r.split(" x")[0] for r in reasons(router, [options(f"call-{i}", alg=0)
                                                        for i in range(4)])]
    assert hashed == ["rc=1 du=sip:127.0.0.5:5060", "rc=1 du=sip:127.0.0.2:5060",
                      "rc=1 du=sip:127.0.0.2:5060", "rc=1 du=sip:127.0.0.2:5060"]
    one = router.request(options("call-1", alg=0)).final.reason
    assert one.endswith("x0=sip:127.0.0.2:5060 x1=sip:127.0.0.5:5060 cnt=2")
    router.rpc("dispatcher.set_state", "d", 1, "sip:127.0.0.5:5060")
    router.rpc("dispatcher.set_state", "i", 1, "sip:127.0.0.2:5060")
    assert router.request(options(alg=0)).final.reason == "rc=-1 du=nil cnt=nil"


def test_list_shape_and_set_order(kemi_router: Any, ds_cfg: Write) -> None:
    router = kemi_router(ds_cfg())
    listing = router.rpc("dispatcher.list")
    assert listing["NRSETS"] == 3
    assert [r["ID"] for r in listing["RECORDS"]["SET"]] == [1, 3, 2]  # Kamailio's order
    first = listing["RECORDS"]["SET"][0]["TARGETS"]["DEST"][0]
    assert first["URI"] == "sip:127.0.0.5:5060" and first["FLAGS"] == "AX"
    assert first["ATTRS"]["BODY"] == "duid=c;weight=50" and first["ATTRS"]["WEIGHT"] == 50
    assert "ATTRS" not in listing["RECORDS"]["SET"][1]["TARGETS"]["DEST"][0]


def test_failover_marks_the_failed_proxy_for_every_later_call(kemi_router: Any,
                                                             ds_cfg: Write) -> None:
    router = kemi_router(ds_cfg())
    out = router.request(invite("f1"))
    assert [f.dest for f in out.forwarded] == ["udp:127.0.0.5:5060"]
    again = router.reply(out.forwarded[0], 503, "Service Unavailable")
    assert [f.dest for f in again.forwarded] == ["udp:127.0.0.3:5060"]
    assert router.rpc("dispatcher.list")["RECORDS"]["SET"][0]["TARGETS"]["DEST"][0]["FLAGS"] == "IP"
    later = [router.request(invite(f"g{i}")).forwarded[0].dest for i in range(4)]
    assert "udp:127.0.0.5:5060" not in later


def test_silent_proxy_fails_over_after_fr_timer(kemi_router: Any, ds_cfg: Write) -> None:
    router = kemi_router(ds_cfg())
    out = router.request(invite("t1"))
    assert [f.dest for f in out.forwarded] == ["udp:127.0.0.5:5060"]
    later = router.advance(4.1)
    assert [f.dest for f in later.forwarded] == ["udp:127.0.0.3:5060"]


def test_ds_reload_reads_the_file_again(kemi_router: Any, ds_cfg: Write) -> None:
    cfg = ds_cfg()
    router = kemi_router(cfg)
    (cfg.parent / "dispatcher.list").write_text(LIST + "9 sip:127.0.0.9:5060\n")
    assert router.rpc("dispatcher.reload") == "Ok. Dispatcher successfully reloaded."
    assert router.rpc("dispatcher.list")["NRSETS"] == 4
    assert router.request(options(set_=9)).final.reason.startswith("rc=1 du=sip:127.0.0.9:5060")
