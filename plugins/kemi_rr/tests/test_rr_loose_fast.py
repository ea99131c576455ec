"""rr's loose_route compiled (kemi_core.sip.loose_router, kemi_rr.loose_fast) against the Python
form, the reference: the same requests (R-URIs ours or not, Route sets of no, one or several
entries and lines, our entry with or without ;lr, ;r2, ;transport=, upper-case or repeated
parameter names, display names, addr-specs, a To tag or none, mode 0 or 1, force_send_socket,
a parsed R-URI kept by the message, an rr state made before) go through both, and what each
leaves (return value, the bytes the request would be sent as, its headers and cache, $du, the
forced socket, the rr state, what check_route_param and is_direction then answer) must be
equal. The usual in-dialog request must take the compiled path (the pure form not called)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kemi_rr
from kemi_core.api import Core, CoreConfig, ListenAddr, MsgContext, get_pv
from kemi_core.sip import SipParseError, loose_router
from kemi_core.testing import context, offline_core
from kemi_rr import uris
from kemi_rr.loose_fast import compiled_loose_route
from kemi_rr.state import rr_state

pytestmark = pytest.mark.skipif(loose_router is None, reason="_fast not built")

_CORES: dict[bool, Core] = {}


def _core(force_socket: bool) -> Core:
    """A core listening on udp:127.0.0.1:5060 and :5070 (one per force_send_socket value)."""
    found = _CORES.get(force_socket)
    if found is None:
        cfg = CoreConfig(listen=[ListenAddr("udp", "127.0.0.1", 5060),
                                 ListenAddr("udp", "127.0.0.1", 5070)])
        found, _ = offline_core(("rr", kemi_rr), config=cfg,
                                params={("rr", "force_send_socket"): int(force_socket)})
        _CORES[force_socket] = found
    return found


class _Counted:
    """The pure form, counting its calls (the compiled form hands it what it does not take)."""

    def __init__(self, pure: Any) -> None:
        self.pure = pure
        self.calls = 0

    def __call__(self, *args: Any) -> int:
        self.calls += 1
        return self.pure(*args)  # type: ignore[no-any-return]


PURE = _Counted(kemi_rr.ki_loose_route)
PURE_MODE = _Counted(kemi_rr.ki_loose_route_mode)
FAST = compiled_loose_route(PURE, 1)
FAST_MODE = compiled_loose_route(PURE_MODE, 2)


def _request(method: str, ruri: str, route_lines: list[str], to_tag: bool) -> bytes:
    lines = [f"{method} {ruri} SIP/2.0",
             "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-lr-1;rport",
             "From: <sip:alice@127.0.0.1>;tag=ftag1",
             "To: <sip:bob@127.0.0.1>" + (";tag=ttag1" if to_tag else ""),
             "Call-ID: lr-fast-1", f"CSeq: 2 {method}"]
    lines += [f"Route: {r}" for r in route_lines]
    lines += ["Max-Forwards: 70", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _outcome(ctx: MsgContext, ret: object) -> dict[str, Any]:
    msg: Any = ctx.msg
    st_ = vars(rr_state(ctx))
    cache = msg._cache
    return {
        "ret": ret, "bytes": msg.to_bytes(), "keys": list(msg.header_keys), "ruri": msg.ruri,
        "du": ctx.dst_uri, "socket": ctx.send_socket, "state": dict(st_),
        "route_cached": "route" in cache, "front": cache.get(" front"),
        "ftag": kemi_rr.ki_check_route_param(ctx, "ftag="),
        "lr": kemi_rr.ki_check_route_param(ctx, ";lr"),
        "down": kemi_rr.ki_is_direction(ctx, "downstream"),
        "route_uri": get_pv(ctx, "$route_uri"),
    }


def _both(method: str, ruri: str, route_lines: list[str], to_tag: bool, mode: int | None,
          force_socket: bool, parsed_ruri: bool, state_before: bool, cold: bool
          ) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Run the pure form, then the compiled one, on two parses of the same request: the two
    outcomes and whether the compiled form handed the request to the pure one."""
    core = _core(force_socket)
    data = _request(method, ruri, route_lines, to_tag)
    out = []
    forms: tuple[Any, Any] = ((kemi_rr.ki_loose_route, FAST) if mode is None
                              else (kemi_rr.ki_loose_route_mode, FAST_MODE))
    for fn in forms:
        ctx = context(core, data)
        if parsed_ruri:
            try:
                ctx.msg.uri  # noqa: B018 (the message keeps the parsed R-URI)
            except Exception:  # noqa: BLE001 (a bad R-URI: both forms meet it)
                pass
        if state_before:
            rr_state(ctx).params = (";x=1",)
        if cold and fn in (FAST, FAST_MODE):
            uris._OWN.clear()  # is_own's memo empty: the compiled form cannot decide
        before = PURE.calls + PURE_MODE.calls
        try:
            ret: Any = fn(ctx) if mode is None else fn(ctx, mode)
        except SipParseError as exc:  # (a Route URI Python refuses, ;=v: both raise it)
            ret = repr(exc)
        handed = PURE.calls + PURE_MODE.calls > before
        out.append(_outcome(ctx, ret))
    return out[0], out[1], handed


_HOSTS = ["127.0.0.1", "127.0.0.1:5060", "127.0.0.1:5070", "127.0.0.1:5999", "10.0.0.9",
          "localhost", "127.0.0.1:05060"]
_PARAMS = [";lr", ";LR", ";lr=on", ";ftag=ftag1", ";ftag=other", ";r2=on", ";transport=udp",
           ";transport=UDP", ";transport=tcp", ";nat=yes", ";ftag=a;ftag=b", ";x=", ";=v"]


@st.composite
def _route_uri(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["sip", "sip", "sip", "sips", "SIP"]))
    user = draw(st.sampled_from(["", "", "bob@"]))
    params = draw(st.lists(st.sampled_from(_PARAMS), max_size=3))
    return f"{scheme}:{user}{draw(st.sampled_from(_HOSTS))}{''.join(params)}"


@st.composite
def _entry(draw: st.DrawFn) -> str:
    uri = draw(_route_uri())
    shape = draw(st.sampled_from(["<{}>", "<{}>", "<{}>", "{}", '"Proxy" <{}>', "<{}>;hp=1",
                                 "  <{}>", "Name <{}>"]))
    return shape.format(uri)


_LINES = st.lists(st.lists(_entry(), min_size=1, max_size=2).map(", ".join), max_size=2)
_RURIS = ["sip:bob@127.0.0.1:5999", "sip:127.0.0.1:5090", "sip:127.0.0.1", "sip:bob@127.0.0.1",
          "sip:127.0.0.1:5060;transport=udp", "sips:bob@example.com", "sip:bob@10.0.0.9;lr",
          "sip:127.0.0.1:5070", "tel:+123"]


@settings(max_examples=400, deadline=None)
@given(method=st.sampled_from(["ACK", "BYE", "INVITE", "OPTIONS"]),
       ruri=st.sampled_from(_RURIS), lines=_LINES, to_tag=st.booleans(),
       mode=st.sampled_from([None, None, 0, 1, 2, 3]), force_socket=st.booleans(),
       parsed_ruri=st.booleans(), state_before=st.booleans(),
       cold=st.sampled_from([False, False, False, True]))
def test_compiled_loose_route_leaves_what_the_python_form_leaves(
        method: str, ruri: str, lines: list[str], to_tag: bool, mode: int | None,
        force_socket: bool, parsed_ruri: bool, state_before: bool, cold: bool) -> None:
    pure, fast, _ = _both(method, ruri, lines, to_tag, mode, force_socket, parsed_ruri,
                          state_before, cold)
    assert fast == pure


@pytest.mark.parametrize("to_tag", [True, False])
@pytest.mark.parametrize("parsed_ruri", [False, True])
@pytest.mark.parametrize("route", ["<sip:127.0.0.1;lr;ftag=ftag1>",
                                   "<sip:127.0.0.1:5060;lr;ftag=ftag1;did=a.b>",
                                   "<sip:127.0.0.1;transport=udp;lr>", "<sip:127.0.0.1:5070;lr>"])
def test_the_usual_in_dialog_request_takes_the_compiled_path(
        route: str, to_tag: bool, parsed_ruri: bool) -> None:
    for mode in (None, 0, 1):
        pure, fast, handed = _both("ACK", "sip:127.0.0.1:5090", [route], to_tag, mode, False,
                                   parsed_ruri, False, False)
        assert fast == pure and not handed
        assert pure["ret"] == (1 if to_tag else -3) and "route" not in pure["keys"]


@pytest.mark.parametrize("lines, ruri, force_socket", [
    (["<sip:127.0.0.1;lr;r2=on>, <sip:127.0.0.1:5070;lr;r2=on>"], "sip:b@127.0.0.1:5999", False),
    (["<sip:127.0.0.1;lr>", "<sip:10.0.0.9;lr>"], "sip:b@127.0.0.1:5999", False),  # 2 lines
    (["<sip:127.0.0.1;lr>, <sip:10.0.0.9;lr>"], "sip:b@127.0.0.1:5999", False),  # 2 entries
    (["<sip:10.0.0.9;lr>"], "sip:127.0.0.1", False),  # a strict router before us
    (["<sip:10.0.0.9;lr>"], "sip:b@127.0.0.1:5999", False),  # not ours
    (["<sip:127.0.0.1;LR;Ftag=ftag1>"], "sip:b@127.0.0.1:5999", False),  # params_text lowers
    (["<sip:127.0.0.1;lr>"], "sip:b@127.0.0.1:5999", True),  # force_send_socket
    (["<sip:127.0.0.1;lr>"], "sip:127.0.0.1", False),  # the R-URI is ours
])
def test_other_shapes_go_to_the_python_form(lines: list[str], ruri: str,
                                            force_socket: bool) -> None:
    pure, fast, handed = _both("BYE", ruri, lines, True, None, force_socket, False, False,
                               False)
    assert fast == pure and handed
