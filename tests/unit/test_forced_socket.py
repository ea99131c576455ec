"""A forced send socket ($fs, force_send_socket, a branch's socket): how its text reads, which
socket a request then leaves from (and, none forced, the one it came in on or the transport's
default), and that append_branch keeps the one forced when it runs
(tests/e2e/test_send_socket_vs_kamailio.py and test_arrival_socket_vs_kamailio.py compare the
wire with Kamailio's)."""

from __future__ import annotations

import attrs
import pytest

from kemi_core.config.model import CoreConfig, ListenAddr
from kemi_core.forwarding import forced_local, parse_socket, send_local
from kemi_core.native.functions import append_branch
from kemi_core.testing import context, offline_core
from kemi_core.testing.capture import CaptureTransport

LISTENS = [ListenAddr("udp", "127.0.0.1", 5060), ListenAddr("udp", "127.0.0.1", 5062),
           ListenAddr("tcp", "127.0.0.1", 5060)]
INVITE = ("INVITE sip:b@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
          "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: fs-1\r\n"
          "CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize(("text", "parts"), [
    ("udp:127.0.0.1:5062", ("udp", "127.0.0.1", 5062)),
    ("TCP:10.0.0.1:5070", ("tcp", "10.0.0.1", 5070)),
    ("10.0.0.1:5070", ("udp", "10.0.0.1", 5070)),
    ("10.0.0.1", ("udp", "10.0.0.1", 5060)),
    ("tls:[::1]:5061", ("tls", "::1", 5061)),
    (" udp:127.0.0.1:5062 ", ("udp", "127.0.0.1", 5062)),
    ("udp:127.0.0.1:x", None),
    ("udp:", None),
    ("", None),
])
def test_socket_text_reads_as_kamailio_writes_it(text: str, parts: tuple[str, str, int] | None
                                                 ) -> None:
    assert parse_socket(text) == parts


def test_the_forced_listen_socket_is_where_a_request_leaves_from() -> None:
    core, _ = offline_core(config=CoreConfig(listen=LISTENS))
    assert forced_local(core, "udp", "udp:127.0.0.1:5062") == ("127.0.0.1", 5062)
    assert forced_local(core, "tcp", "tcp:127.0.0.1:5060") == ("127.0.0.1", 5060)
    assert forced_local(core, "ws", "tcp:127.0.0.1:5060") == ("127.0.0.1", 5060)
    assert forced_local(core, "udp", None) is None
    assert forced_local(core, "udp", "udp:127.0.0.1:5999") is None  # not a listen socket
    assert forced_local(core, "udp", "tcp:127.0.0.1:5060") is None  # another transport
    assert forced_local(core, "udp", "not a socket") is None


def test_append_branch_keeps_the_socket_forced_when_it_runs() -> None:
    core, _ = offline_core(config=CoreConfig(listen=LISTENS))
    ctx = context(core, INVITE)
    assert append_branch(ctx, "sip:c@127.0.0.1:5080") == 1
    ctx.send_socket = "udp:127.0.0.1:5062"
    assert append_branch(ctx, "sip:d$fU@127.0.0.1") == 1  # variables in the URI (corex's)
    assert append_branch(ctx) == 1
    ctx.send_socket = None
    assert [(b.uri, b.send_socket) for b in ctx.branches] == [
        ("sip:c@127.0.0.1:5080", None),
        ("sip:da@127.0.0.1", "udp:127.0.0.1:5062"),
        ("sip:b@127.0.0.1", "udp:127.0.0.1:5062")]


def test_a_via_names_the_address_its_listen_advertises() -> None:
    """``listen=... advertise``: the listen socket by its advertised host:port; another socket
    of that host by its host's advertised host and its own port."""
    from kemi_core.forwarding import via_sent_by

    listens = [ListenAddr("udp", "127.0.0.1", 5060, advertise_host="198.51.100.7",
                          advertise_port=5080),
               ListenAddr("udp", "127.0.0.1", 5062), ListenAddr("tcp", "127.0.0.1", 5060)]
    core, _ = offline_core(config=CoreConfig(listen=listens))
    ctx = context(core, INVITE)
    assert via_sent_by(ctx, "udp") == "198.51.100.7:5080"
    assert via_sent_by(ctx, "udp", ("127.0.0.1", 5062)) == "127.0.0.1:5062"
    assert via_sent_by(ctx, "tcp") == "127.0.0.1:5060"  # (the capture's address, no advertise)
    core.attach_transport(CaptureTransport(address=("127.0.0.1", 40001)))
    assert via_sent_by(ctx, "udp") == "198.51.100.7:40001"
    ctx.extra["advertised_address"] = "203.0.113.1"  # set_advertised_address wins
    assert via_sent_by(ctx, "udp") == "203.0.113.1:40001"


@pytest.mark.parametrize(("rcv", "proto", "host", "forced", "want"), [
    # over UDP from the UDP socket it came in on, when of the destination's family
    (("udp", 5062), "udp", "127.0.0.1", None, ("127.0.0.1", 5062)),
    (("udp", 5060), "udp", "127.0.0.1", None, ("127.0.0.1", 5060)),
    (("udp", 5062), "udp", "[::1]", None, None),  # no IPv6 listen: the usual socket
    (("udp", 5062), "udp", "127.0.0.1", "udp:127.0.0.1:5060", ("127.0.0.1", 5060)),
    # else the transport's default: of the family, the first not on the loopback, else
    # the last (here the last UDP one; the one TCP one)
    (("tcp", 5060), "udp", "127.0.0.1", None, ("127.0.0.1", 5062)),
    (("udp", 5060), "tcp", "127.0.0.1", None, ("127.0.0.1", 5060)),
    (("udp", 5060), "ws", "127.0.0.1", None, ("127.0.0.1", 5060)),
    (("udp", 5060), "tls", "127.0.0.1", None, None),  # no TLS listen
])
def test_the_socket_a_relayed_request_leaves_from(
        rcv: tuple[str, int], proto: str, host: str, forced: str | None,
        want: tuple[str, int] | None) -> None:
    core, _ = offline_core(config=CoreConfig(listen=LISTENS))
    ctx = context(core, INVITE, proto=rcv[0])
    ctx.rcv = attrs.evolve(ctx.rcv, dst_port=rcv[1])
    assert send_local(ctx, proto, forced, host) == want


def test_one_udp_listen_leaves_the_choice_to_the_transport() -> None:
    core, _ = offline_core()
    assert send_local(context(core, INVITE), "udp", None, "127.0.0.1") is None


def test_mhomed_picks_the_first_udp_listen_of_the_kernels_source_address() -> None:
    core, _ = offline_core(config=CoreConfig(listen=[
        ListenAddr("udp", "127.0.0.1", 5060), ListenAddr("udp", "127.0.0.1", 5062)],
        mhomed=True))
    ctx = context(core, INVITE)
    ctx.rcv = attrs.evolve(ctx.rcv, dst_port=5062)
    assert send_local(ctx, "udp", None, "127.0.0.1") == ("127.0.0.1", 5060)
    assert send_local(ctx, "udp", "udp:127.0.0.1:5062", "127.0.0.1") == ("127.0.0.1", 5062)
    # a name not resolved yet: the socket it came in on
    assert send_local(ctx, "udp", None, "not-resolved.invalid") == ("127.0.0.1", 5062)
