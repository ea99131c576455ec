"""rr: Record-Route insertion, params before/after, presets, double RR, removal."""

from __future__ import annotations

import attrs
import pytest

import kemi_rr
from kemi_core.api import Core, ListenAddr, MsgContext, for_socket
from kemi_core.sip import parse_datagram
from kemi_core.testing import context, offline_core, request

UPSTREAM_RR = "Record-Route: <sip:10.0.0.9;lr>"


def _core(**params: int | str) -> Core:
    core, _ = offline_core(("rr", kemi_rr), params={("rr", k): v for k, v in params.items()})
    return core


def _invite(core: Core, extra: str = "", proto: str = "udp", ruri: str = "sip:bob@10.0.0.2") -> MsgContext:
    raw = request("INVITE", ruri, 5070, extra=extra)
    return context(core, raw, proto=proto)


def _wire(ctx: MsgContext) -> list[str]:
    """Record-Route values of the request as it goes out over the transport it came in on
    (re-parsed from its bytes)."""
    return _sent(ctx, ctx.rcv.proto.lower())


def _sent(ctx: MsgContext, proto: str, forced: str | None = None) -> list[str]:
    """Record-Route values of a branch that leaves over ``proto`` (from ``forced``)."""
    out = for_socket(ctx, ctx.msg, proto, forced)
    return [str(v) for v in parse_datagram(out.to_bytes()).headers("Record-Route")]


def test_record_route_on_top_with_ftag() -> None:
    core = _core()
    ctx = _invite(core, extra=UPSTREAM_RR)
    ftag = ctx.msg.from_.tag
    received = ctx.msg.to_bytes()
    assert kemi_rr.ki_record_route(ctx) == 1
    # as Kamailio's lumps: the message the script reads is unchanged, the entry is in what
    # is sent (is_present_hf("Record-Route") and $hdr(Record-Route) see the upstream one only)
    assert ctx.msg.to_bytes() == received
    out = for_socket(ctx, ctx.msg, "udp", None)
    # Kamailio: first header of the message, default port 5060 left out, ;lr then ;ftag.
    assert next(out.iter_headers()) == ("Record-Route", f"<sip:127.0.0.1;lr;ftag={ftag}>")
    assert _wire(ctx) == [f"<sip:127.0.0.1;lr;ftag={ftag}>", "<sip:10.0.0.9;lr>"]


def test_record_route_params_and_add_rr_param_before_and_after() -> None:
    core = _core()
    ctx = _invite(core)
    ftag = ctx.msg.from_.tag
    assert kemi_rr.ki_add_rr_param(ctx, ";pre=1") == 1
    assert kemi_rr.ki_record_route_params(ctx, ";p=x") == 1
    assert kemi_rr.ki_add_rr_param(ctx, "post=2") == 1  # the ';' is added when missing
    assert _wire(ctx) == [f"<sip:127.0.0.1;lr;ftag={ftag};p=x;pre=1;post=2>"]
    assert ctx.msg.header_count("Record-Route") == 0


def test_port_and_transport_when_not_default_udp() -> None:
    core = _core(enable_double_rr=0)
    ctx = _invite(core, proto="tcp")
    ctx.rcv = attrs.evolve(ctx.rcv, dst_port=5090)
    kemi_rr.ki_record_route(ctx)
    assert _wire(ctx)[0].startswith("<sip:127.0.0.1:5090;transport=tcp;lr;ftag=")


def test_tcp_in_udp_out_double_rr_like_kamailio() -> None:
    # Kamailio 5.6, TCP in on 5090 and UDP out: the outbound entry first, both with r2=on.
    core = _core()
    ctx = _invite(core, proto="tcp")
    ctx.rcv = attrs.evolve(ctx.rcv, dst_port=5090)
    ftag = ctx.msg.from_.tag
    kemi_rr.ki_record_route(ctx)
    assert _sent(ctx, "udp") == [f"<sip:127.0.0.1;r2=on;lr;ftag={ftag}>",
                                 f"<sip:127.0.0.1:5090;transport=tcp;r2=on;lr;ftag={ftag}>"]
    # the branch that leaves over TCP leaves from the socket it came in on: one entry
    assert _sent(ctx, "tcp") == [f"<sip:127.0.0.1:5090;transport=tcp;lr;ftag={ftag}>"]


def test_modparams_full_lr_no_fromtag_username() -> None:
    core = _core(enable_full_lr=1, append_fromtag=0, add_username=1)
    ctx = _invite(core)
    kemi_rr.ki_record_route(ctx)
    assert _wire(ctx) == ["<sip:bob@127.0.0.1;lr=on>"]


def test_modparams_set_after_use_and_other_cores_apply_at_once() -> None:
    """rr keeps its settings read from the core; a set_param (tests do it after start-up)
    and another core with other params are seen by the next call."""
    def recorded(core: Core) -> tuple[list[str], str]:
        ctx = _invite(core)
        assert kemi_rr.ki_record_route(ctx) == 1
        return _wire(ctx), ctx.msg.from_.tag

    wire, ftag = recorded(core := _core())
    assert wire == [f"<sip:127.0.0.1;lr;ftag={ftag}>"]
    core.set_param("rr", "enable_full_lr", 1)
    wire, ftag = recorded(core)
    assert wire == [f"<sip:127.0.0.1;lr=on;ftag={ftag}>"]
    assert recorded(_core(append_fromtag=0))[0] == ["<sip:127.0.0.1;lr>"]
    wire, ftag = recorded(core)
    assert wire == [f"<sip:127.0.0.1;lr=on;ftag={ftag}>"]


def test_second_record_route_refused_until_removed() -> None:
    core = _core()
    ctx = _invite(core, extra=UPSTREAM_RR)
    assert kemi_rr.ki_record_route(ctx) == 1
    assert kemi_rr.ki_record_route(ctx) == -1
    assert len(_wire(ctx)) == 2
    assert kemi_rr.ki_remove_record_route(ctx) == 1
    assert _wire(ctx) == ["<sip:10.0.0.9;lr>"]  # only ours went, the upstream one stays
    assert kemi_rr.ki_record_route(ctx) == 1
    assert len(_wire(ctx)) == 2


def test_remove_record_route_keeps_other_lines_in_place() -> None:
    core = _core()
    ctx = _invite(core, extra="Record-Route: <sip:10.0.0.9;lr>, <sip:10.0.0.8;lr>\r\nX-After: 1")
    before = list(ctx.msg.iter_headers())
    kemi_rr.ki_add_rr_param(ctx, ";a=1")
    kemi_rr.ki_record_route(ctx)
    kemi_rr.ki_remove_record_route(ctx)
    assert list(parse_datagram(ctx.msg.to_bytes()).iter_headers()) == before


def test_preset_one_and_two() -> None:
    """Kamailio 5.6 writes a preset entry's ";ftag=" before ";lr" (test_front_headers_vs_kamailio)."""
    core = _core()
    ctx = _invite(core)
    ftag = ctx.msg.from_.tag
    assert kemi_rr.ki_record_route_preset_one(ctx, "1.2.3.4:5090;x=1") == 1
    assert _wire(ctx) == [f"<sip:1.2.3.4:5090;x=1;ftag={ftag};lr>"]
    ctx = _invite(core)
    ftag = ctx.msg.from_.tag
    assert kemi_rr.ki_record_route_preset(ctx, "1.1.1.1;r2=on", "2.2.2.2;r2=on") == 1
    assert _wire(ctx) == [f"<sip:1.1.1.1;r2=on;ftag={ftag};lr>", f"<sip:2.2.2.2;r2=on;ftag={ftag};lr>"]
    ctx = _invite(core)
    assert kemi_rr.ki_record_route_preset(ctx, "1.1.1.1", "") == 1  # empty second: one entry
    assert len(_wire(ctx)) == 1


def test_advertised_address_and_sips() -> None:
    core = _core()
    ctx = _invite(core, ruri="sips:bob@example.com")
    ftag = ctx.msg.from_.tag
    assert kemi_rr.ki_record_route_advertised_address(ctx, "proxy.example.com:5081") == 1
    assert _wire(ctx) == [f"<sips:proxy.example.com:5081;ftag={ftag};lr>"]
    core = _core(ignore_sips=1)
    ctx = _invite(core, ruri="sips:bob@example.com")
    kemi_rr.ki_record_route(ctx)
    assert _wire(ctx)[0].startswith("<sip:127.0.0.1;lr")


def test_listen_advertise_is_used() -> None:
    core = _core()
    core.config.listen[0].advertise_host = "sip.example.com"
    ctx = _invite(core)
    kemi_rr.ki_record_route(ctx)
    assert _wire(ctx)[0].startswith("<sip:sip.example.com;lr;ftag=")


def test_double_rr_decided_per_branch_by_its_socket() -> None:
    # Kamailio decides when each branch is sent, from the socket it leaves from, not from the
    # R-URI at record_route time (its lumps are conditional on different realms)
    core = _core()
    core.config.listen.append(ListenAddr("tcp", "127.0.0.1", 5062))
    ctx = _invite(core, ruri="sip:bob@10.0.0.2;transport=tcp")
    ftag = ctx.msg.from_.tag
    kemi_rr.ki_record_route(ctx)
    single = [f"<sip:127.0.0.1;lr;ftag={ftag}>"]
    assert ctx.msg.header_count("Record-Route") == 0  # as Kamailio: only what is sent has it
    # Top entry faces the next hop (tcp out), the second the previous hop (udp in).
    double = [f"<sip:127.0.0.1:5062;transport=tcp;r2=on;lr;ftag={ftag}>",
              f"<sip:127.0.0.1;r2=on;lr;ftag={ftag}>"]
    assert _sent(ctx, "tcp") == double
    assert _sent(ctx, "udp") == single
    # a forced socket: the one it names; the same as the inbound one: one entry
    assert _sent(ctx, "udp", "tcp:127.0.0.1:5062") == double
    assert _sent(ctx, "udp", "udp:127.0.0.1:5060") == single
    # add_rr_param after record_route reaches both entries of a branch
    kemi_rr.ki_add_rr_param(ctx, ";n=1")
    assert _sent(ctx, "tcp") == [v[:-1] + ";n=1>" for v in double]
    core0 = _core(enable_double_rr=0)
    core0.config.listen.append(ListenAddr("tcp", "127.0.0.1", 5062))
    ctx = _invite(core0, ruri="sip:bob@10.0.0.2;transport=tcp")
    kemi_rr.ki_record_route(ctx)
    assert len(_sent(ctx, "tcp")) == 1


def test_double_rr_forced_socket_then_branch_back_on_inbound() -> None:
    core = _core()
    core.config.listen.append(ListenAddr("tcp", "127.0.0.1", 5062))
    ctx = _invite(core)
    ftag = ctx.msg.from_.tag
    ctx.send_socket = "tcp:127.0.0.1:5062"
    kemi_rr.ki_record_route(ctx)
    assert _sent(ctx, "tcp", ctx.send_socket) == [
        f"<sip:127.0.0.1:5062;transport=tcp;r2=on;lr;ftag={ftag}>",
        f"<sip:127.0.0.1;r2=on;lr;ftag={ftag}>"]
    assert _sent(ctx, "udp") == [f"<sip:127.0.0.1;lr;ftag={ftag}>"]


def test_double_rr_gone_after_remove_record_route() -> None:
    core = _core()
    core.config.listen.append(ListenAddr("tcp", "127.0.0.1", 5062))
    ctx = _invite(core, extra=UPSTREAM_RR)
    kemi_rr.ki_record_route(ctx)
    kemi_rr.ki_remove_record_route(ctx)
    assert _sent(ctx, "tcp") == ["<sip:10.0.0.9;lr>"]


def test_double_rr_mode_2_always_two_explicit() -> None:
    core = _core(enable_double_rr=2)
    core.config.listen.append(ListenAddr("tcp", "127.0.0.1", 5062))
    ctx = _invite(core)
    ftag = ctx.msg.from_.tag
    kemi_rr.ki_record_route(ctx)
    kemi_rr.ki_add_rr_param(ctx, ";n=1")  # reaches both entries
    entry = f"<sip:127.0.0.1;transport=udp;r2=on;lr;ftag={ftag};n=1>"
    assert _wire(ctx) == [entry, entry]
    assert _sent(ctx, "udp") == [entry, entry]
    assert _sent(ctx, "tcp") == [f"<sip:127.0.0.1:5062;transport=tcp;r2=on;lr;ftag={ftag};n=1>",
                                 entry]


def test_advertised_address_double_per_branch() -> None:
    core = _core()
    core.config.listen.append(ListenAddr("tcp", "127.0.0.1", 5062))
    ctx = _invite(core)
    ftag = ctx.msg.from_.tag
    assert kemi_rr.ki_record_route_advertised_address(ctx, "proxy.example.com") == 1
    assert _sent(ctx, "udp") == [f"<sip:proxy.example.com;ftag={ftag};lr>"]
    assert _sent(ctx, "tcp") == [f"<sip:proxy.example.com;transport=tcp;r2=on;lr;ftag={ftag}>",
                                 f"<sip:proxy.example.com;r2=on;lr;ftag={ftag}>"]


def test_reply_is_refused() -> None:
    core = _core()
    raw = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n"
           b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
           b"Content-Length: 0\r\n\r\n")
    ctx = context(core, raw)
    assert kemi_rr.ki_record_route(ctx) == -1
    assert kemi_rr.ki_add_rr_param(ctx, ";a=1") == -1
    assert kemi_rr.ki_loose_route(ctx) == -1


@pytest.mark.parametrize("name,kinds", [
    ("record_route", ()), ("record_route_params", ("str",)), ("record_route_preset_one", ("str",)),
    ("record_route_preset", ("str", "str")), ("record_route_advertised_address", ("str",)),
    ("loose_route", ()), ("loose_route_preloaded", ()), ("loose_route_mode", ("int",)),
    ("remove_record_route", ()), ("add_rr_param", ("str",)), ("check_route_param", ("str",)),
    ("is_direction", ("str",)), ("next_hop_route", ()),
])
def test_kemi_exports_registered(name: str, kinds: tuple[str, ...]) -> None:
    core = _core()
    exp = core.registry.lookup("rr", name)
    assert exp is not None and tuple(k.value for k in exp.params) == kinds
    assert exp.returns.value == "int"


def test_add_rr_param_after_record_route_reaches_what_is_sent() -> None:
    core = _core()
    ctx = _invite(core, extra="X-A: 1\r\n" + UPSTREAM_RR + "\r\nX-B: 2")
    assert kemi_rr.ki_record_route(ctx) == 1

    def sent() -> bytes:
        return for_socket(ctx, ctx.msg, "udp", None).to_bytes()

    before = sent()
    own = before.split(b"\r\n")[1]
    assert own.startswith(b"Record-Route: <sip:127.0.0.1;lr")
    assert kemi_rr.ki_add_rr_param(ctx, ";nat=yes") == 1
    assert sent() == before.replace(own, own[:-1] + b";nat=yes>")
    assert kemi_rr.ki_add_rr_param(ctx, "x=2") == 1
    assert sent() == before.replace(own, own[:-1] + b";nat=yes;x=2>")
