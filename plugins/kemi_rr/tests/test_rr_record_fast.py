"""rr's record_route compiled (kemi_core.sip.record_router, kemi_rr.record_fast) against the
Python form (ki_record_route), the reference: the same requests (R-URIs sip, sips, SIPS or not
parsing, parsed before or not; a From tag, an empty one or none; received over UDP, TCP or TLS
on IPv4 or IPv6 sockets, on default ports or not; in a request or a branch route; recorded
before, add_rr_param before, a line put in front before) on cores of every rr setting that
matters (enable_full_lr, append_fromtag, enable_double_rr 0/1/2, add_username, ignore_sips, a
listen advertising another address) go through both, and what each leaves must be equal: the
return value, the message, the rr state, the send-time edit (its mode, socket, state, the
entries it makes for several sockets) and the requests it makes for branches leaving over UDP
and TCP. The usual initial INVITE must take the compiled path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kemi_rr
from kemi_core.api import (
    SOCKET_EDIT,
    Core,
    CoreConfig,
    ListenAddr,
    MsgContext,
    RecvInfo,
    RouteType,
)
from kemi_core.sip import parse_datagram, record_router
from kemi_core.testing import offline_core
from kemi_rr.record_fast import compiled_record_route
from kemi_rr.state import rr_state

pytestmark = pytest.mark.skipif(record_router is None, reason="_fast not built")

_CORES: dict[tuple[Any, ...], Core] = {}


def _core(full_lr: bool, fromtag: bool, double: int, username: bool, ignore_sips: bool,
          advertise: bool) -> Core:
    key = (full_lr, fromtag, double, username, ignore_sips, advertise)
    found = _CORES.get(key)
    if found is None:
        listens = [ListenAddr("udp", "127.0.0.1", 5060), ListenAddr("tcp", "127.0.0.1", 5060),
                   ListenAddr("udp", "127.0.0.1", 5070), ListenAddr("udp", "::1", 5060)]
        if advertise:
            listens.append(ListenAddr("udp", "127.0.0.2", 5060, advertise_host="192.0.2.9",
                                      advertise_port=5099))
        params = {("rr", "enable_full_lr"): int(full_lr), ("rr", "append_fromtag"): int(fromtag),
                  ("rr", "enable_double_rr"): double, ("rr", "add_username"): int(username),
                  ("rr", "ignore_sips"): int(ignore_sips)}
        found, _ = offline_core(("rr", kemi_rr), config=CoreConfig(listen=listens),
                                params=params)
        _CORES[key] = found
    return found


class _Counted:
    calls = 0

    def __call__(self, ctx: MsgContext) -> int:
        _Counted.calls += 1
        return kemi_rr.ki_record_route(ctx)


FAST = compiled_record_route(_Counted())


def _request(ruri: str, from_tag: str | None) -> bytes:
    frm = "<sip:alice@127.0.0.1>" + ("" if from_tag is None else f";tag={from_tag}")
    lines = [f"INVITE {ruri} SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-rc1",
             f"From: {frm}", "To: <sip:bob@127.0.0.1>", "Call-ID: rr-fast-1", "CSeq: 1 INVITE",
             "Max-Forwards: 70", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _outcome(ctx: MsgContext, ret: int) -> dict[str, Any]:
    st_ = rr_state(ctx)
    edit: Any = ctx.extra.get(SOCKET_EDIT)
    out: dict[str, Any] = {
        "ret": ret, "msg": ctx.msg.to_bytes(),
        "state": {k: list(v) if isinstance(v, (list, tuple)) else v
                  for k, v in vars(st_).items()},
        "edit": type(edit).__name__,
    }
    if edit is not None:
        out["edit_fields"] = (edit.mode, edit.inbound, edit.state is st_)
        out["entries"] = [edit.entries(s) for s in (None, ("tcp", "127.0.0.1", 5060),
                                                    ("udp", "127.0.0.1", 5070))]
        sent = []
        for proto, forced, local in (("udp", None, None), ("tcp", None, ("127.0.0.1", 5060)),
                                     ("udp", "udp:127.0.0.1:5070", None)):
            made = edit(ctx.msg, proto, forced, local)
            # the send-time edit's compiled usual branch (per_socket_usual) against its
            # Python form
            made_py = edit._call_py(ctx.msg, proto, forced, local)
            assert (None if made is None else (made.to_bytes(), made.header_keys)) == (
                None if made_py is None else (made_py.to_bytes(), made_py.header_keys))
            sent.append(None if made is None else made.to_bytes())
        out["sent"] = sent
    return out


def _both(core: Core, ruri: str, from_tag: str | None, rcv: tuple[str, str, int],
          branch_route: bool, before: str, parsed_ruri: bool
          ) -> tuple[dict[str, Any], dict[str, Any], bool]:
    out = []
    handed = False
    for fn in (kemi_rr.ki_record_route, FAST):
        proto, ip, port = rcv
        ctx = core.new_context(parse_datagram(_request(ruri, from_tag)),
                               RecvInfo(proto, "127.0.0.1", 5080, ip, port))
        if branch_route:
            ctx.route_type = RouteType.BRANCH
        if parsed_ruri:
            try:
                ctx.msg.uri  # noqa: B018 (the message keeps the parsed R-URI)
            except Exception:  # noqa: BLE001 (a bad R-URI: both forms meet it)
                pass
        if before == "recorded":
            kemi_rr.ki_record_route(ctx)
        elif before == "param":
            kemi_rr.ki_add_rr_param(ctx, ";x=1")
        elif before == "front":
            ctx.msg.insert_header_at_front("X-Front", "1", 0)
        elif before == "removed":  # (record_route after remove_record_route: entries again)
            kemi_rr.ki_remove_record_route(ctx)
        calls = _Counted.calls
        ret = fn(ctx)
        handed = _Counted.calls > calls
        if before == "remove_after":  # (the send-time edit then adds nothing)
            kemi_rr.ki_remove_record_route(ctx)
        out.append(_outcome(ctx, ret))
    return out[0], out[1], handed


_RURIS = ["sip:bob@127.0.0.1:5090", "sips:bob@example.com", "SIPS:bob@example.com",
          "sip:bob@127.0.0.1;transport=tcp", "sip:bob@[::1]:5090", "sips:bob@127.0.0.1;=v"]
_RCVS = [("udp", "127.0.0.1", 5060), ("udp", "127.0.0.1", 5060), ("tcp", "127.0.0.1", 5060),
         ("udp", "127.0.0.1", 5070), ("udp", "::1", 5060), ("tls", "127.0.0.1", 5061),
         ("UDP", "127.0.0.1", 5060)]


@settings(max_examples=300, deadline=None)
@given(full_lr=st.booleans(), fromtag=st.sampled_from([True, True, False]),
       double=st.sampled_from([1, 1, 0, 2]), username=st.sampled_from([False, False, True]),
       ignore_sips=st.booleans(), advertise=st.sampled_from([False, False, True]),
       ruri=st.sampled_from(_RURIS), from_tag=st.sampled_from(["ft1", "ft1", "", None]),
       rcv=st.sampled_from(_RCVS), branch_route=st.sampled_from([False, False, True]),
       before=st.sampled_from(["", "", "recorded", "param", "front", "removed",
                               "remove_after"]),
       parsed_ruri=st.booleans())
def test_compiled_record_route_leaves_what_the_python_form_leaves(
        full_lr: bool, fromtag: bool, double: int, username: bool, ignore_sips: bool,
        advertise: bool, ruri: str, from_tag: str | None, rcv: tuple[str, str, int],
        branch_route: bool, before: str, parsed_ruri: bool) -> None:
    core = _core(full_lr, fromtag, double, username, ignore_sips, advertise)
    pure, fast, _ = _both(core, ruri, from_tag, rcv, branch_route, before, parsed_ruri)
    assert fast == pure


@pytest.mark.parametrize("ruri", [_RURIS[0], _RURIS[1], _RURIS[3]])
@pytest.mark.parametrize("rcv", _RCVS[1:6])
@pytest.mark.parametrize("full_lr, double", [(False, 1), (True, 0)])
def test_the_usual_initial_request_takes_the_compiled_path(
        ruri: str, rcv: tuple[str, str, int], full_lr: bool, double: int) -> None:
    core = _core(full_lr, True, double, False, False, False)
    pure, fast, handed = _both(core, ruri, "ft1", rcv, False, "front", False)
    assert fast == pure and not handed and pure["ret"] == 1
