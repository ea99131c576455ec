"""tm's t_relay compiled for the ACK no transaction takes (kemi_core.sip.ack_relayer,
kemi_tm.ack_fast) against the Python form (exports.t_relay), the reference: the same requests
(ACKs and other methods; $du unset, over UDP, TCP or sips, with repeated or upper-case
parameters; Request-URIs with and without a user, port or ;transport=; Vias with or without
;rport, the magic cookie, a port; an INVITE transaction of the same key or none; a tm state,
a forced socket, an advertised address, ;rport on our Via, force_rport; a network that
refuses the datagram) go through each form on a core of its own, and what each leaves
(return value, the datagrams sent and where, the counters of forwarded, failed and sent
requests, the transactions) must be equal. The usual end-to-end ACK must take the compiled
path (the pure form not called). A Via whose ;rport is no port makes both answer -1 (the
received_via error relay() catches)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kemi_tm
from kemi_core.api import Core, MsgContext
from kemi_core.sip import SipParseError, ack_relayer
from kemi_core.testing import CaptureTransport, context, offline_core
from kemi_tm import exports
from kemi_tm.ack_fast import compiled_t_relay

pytestmark = pytest.mark.skipif(ack_relayer is None, reason="_fast not built")

_TM_BRANCH = re.compile(rb"z9hG4bK[^.;\r\n ]+\.\d+")  # (a worker rank's mark first)


class _Refusing(CaptureTransport):
    """A capture transport whose network refuses datagrams while ``refuse`` is set."""

    refuse = False

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool:
        return False if self.refuse else super().send(proto, host, port, data, local)


class _Counted:
    """exports.t_relay, counting its calls (the compiled form hands it what it does not take)."""

    calls = 0

    def __call__(self, ctx: MsgContext) -> int:
        _Counted.calls += 1
        return exports.t_relay(ctx)


FAST = compiled_t_relay(_Counted(), vars(exports))


def _core() -> tuple[Core, _Refusing]:
    core, _ = offline_core(("tm", kemi_tm))
    transport = _Refusing()
    core.attach_transport(transport)
    return core, transport


def _request(method: str, ruri: str, via: str, to_tag: bool = True) -> bytes:
    lines = [f"{method} {ruri} SIP/2.0", f"Via: {via}",
             "From: <sip:alice@127.0.0.1>;tag=ft1",
             "To: <sip:bob@127.0.0.1>" + (";tag=tt1" if to_tag else ""),
             "Call-ID: ack-fast-1", f"CSeq: 7 {method}", "Max-Forwards: 70",
             "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _run(fn: Any, method: str, ruri: str, via: str, du: str | None, invite_tx: bool,
         tm_state: bool, extra: dict[str, Any], socket: str | None, force_rport: bool,
         refuse: bool) -> tuple[Any, ...]:
    core, transport = _core()
    tm: Any = core.services["tm"]
    if invite_tx:  # an INVITE transaction of the ACK's key (its branch, Call-ID, CSeq)
        inv = context(core, _request("INVITE", ruri, via, to_tag=False))
        try:
            tm.new_transaction(inv)
        except SipParseError:  # (a Via tm refuses: no transaction)
            pass
        transport.sent.clear()
    ctx = context(core, _request(method, ruri, via))
    exports.svc_of(ctx)  # (t_relay's last service: this core's)
    # as after a worker's first relay: the literal known, whether there is an onsend_route
    core.resolver.known("127.0.0.1")
    core.onsend_name()
    ctx.dst_uri = du
    if tm_state:
        ctx.mod_state["tm"] = None
    ctx.extra.update(extra)
    ctx.send_socket = socket
    ctx.force_rport = force_rport
    transport.refuse = refuse
    ret = fn(ctx)
    stats = core.stats
    assert stats is not None
    counters = [c.value for c in (stats.fwd_requests, stats.err_requests, stats.sent_requests)]
    # (a transaction's branch names its ident, another per core: the stateless one stays)
    sent = [(s.proto, s.host, s.port, _TM_BRANCH.sub(b"TM-BRANCH", s.data), s.local)
            for s in transport.sent]
    txs = sorted((tx.method, tx.state.name) for tx in tm.table.transactions())
    return ret, counters, sent, txs


_VIAS = ["SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-a1;rport",
         "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-a1",
         "SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK-a2;rport",
         "SIP/2.0/UDP HOST.example:5080;branch=z9hG4bK-a3",
         "SIP/2.0/UDP 127.0.0.1:5080;branch=old-2543-branch",
         "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-a1;received=10.0.0.1;rport=5080",
         "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-a5;rport=99999"]
_RURIS = ["sip:bob@127.0.0.1:5090", "sip:127.0.0.1:5090", "sip:127.0.0.1",
          "sip:127.0.0.1:5090;transport=udp", "sip:127.0.0.1:5090;transport=UDP",
          "sip:127.0.0.1:5090;Transport=udp", "sip:127.0.0.1:5090;x=1;x=2",
          "sip:127.0.0.1:5090;transport=tcp", "sips:bob@127.0.0.1:5091", "sip:127.0.0.1:0",
          "sip:[::1]:5090"]
_DUS = [None, None, "", "sip:127.0.0.1:5999", "sip:127.0.0.1:5999;lr",
        "sip:127.0.0.1:5999;transport=tcp", "sips:127.0.0.1:5999"]
_EXTRAS: list[dict[str, Any]] = [{}, {}, {"rr": object()}, {"advertised_address": "198.51.100.1"},
                                 {"advertised_port": 5999}, {"add_local_rport": True},
                                 {"advertised_address": ""}, {"socket_edit": None}]


@settings(max_examples=300, deadline=None)
@given(method=st.sampled_from(["ACK", "ACK", "ACK", "BYE", "INVITE"]),
       ruri=st.sampled_from(_RURIS), via=st.sampled_from(_VIAS), du=st.sampled_from(_DUS),
       invite_tx=st.booleans(), tm_state=st.booleans(), extra=st.sampled_from(_EXTRAS),
       socket=st.sampled_from([None, None, None, "udp:127.0.0.1:5060"]),
       force_rport=st.booleans(), refuse=st.sampled_from([False, False, False, True]))
def test_compiled_t_relay_leaves_what_the_python_form_leaves(
        method: str, ruri: str, via: str, du: str | None, invite_tx: bool, tm_state: bool,
        extra: dict[str, Any], socket: str | None, force_rport: bool, refuse: bool) -> None:
    args = (method, ruri, via, du, invite_tx, tm_state, extra, socket, force_rport, refuse)
    assert _run(FAST, *args) == _run(exports.t_relay, *args)


@pytest.mark.parametrize("ruri", ["sip:bob@127.0.0.1:5090", "sip:127.0.0.1:5090;transport=udp"])
@pytest.mark.parametrize("via", _VIAS[:4] + _VIAS[5:6])
@pytest.mark.parametrize("du, refuse", [(None, False), ("sip:127.0.0.1:5999;lr", False),
                                        (None, True)])
def test_the_usual_ack_takes_the_compiled_path(ruri: str, via: str, du: str | None,
                                               refuse: bool) -> None:
    args = ("ACK", ruri, via, du, False, False, {"rr": object()}, None, False, refuse)
    pure = _run(exports.t_relay, *args)
    before = _Counted.calls
    assert _run(FAST, *args) == pure
    assert _Counted.calls == before
    assert pure[0] == (-1 if refuse else 1) and len(pure[2]) == (0 if refuse else 1)
    assert pure[1][:2] == ([0, 1] if refuse else [1, 0])
