"""rr: loose_route on real SIP bytes (cases checked against Kamailio 5.6 on 127.0.0.1).

The server listens on udp:127.0.0.1:5060; 127.0.0.1:5999 / :5998 are other hops.
"""

from __future__ import annotations

import pytest

import kemi_rr
from kemi_core.api import Core, ListenAddr, MsgContext, for_socket, get_pv
from kemi_core.sip import parse_datagram
from kemi_core.testing import context, offline_core, request
from kemi_rr.state import rr_state

FTAG = "caller1"
TTAG = "callee1"


@pytest.fixture
def core() -> Core:
    c, _ = offline_core(("rr", kemi_rr))
    return c


def _req(core: Core, method: str, ruri: str, routes: list[str], totag: str | None = TTAG,
         from_tag: str = FTAG) -> MsgContext:
    raw = request(method, ruri, 5070, extra="\r\n".join(f"Route: {r}" for r in routes))
    text = raw.decode()
    head = text.split("\r\n")
    head = [f"From: <sip:alice@127.0.0.1>;tag={from_tag}" if h.startswith("From:") else h for h in head]
    if totag:
        head = [f"{h};tag={totag}" if h.startswith("To:") else h for h in head]
    return context(core, "\r\n".join(head).encode())


def _out(ctx: MsgContext) -> tuple[str, list[str]]:
    """R-URI and Route values of the request as it would be sent."""
    msg = parse_datagram(ctx.msg.to_bytes())
    return msg.ruri, [r.uri_text for r in msg.routes]


def test_no_route_header(core: Core) -> None:
    ctx = _req(core, "INVITE", "sip:bob@127.0.0.1:5999", [], totag=None)
    assert kemi_rr.ki_loose_route(ctx) == -1
    assert ctx.dst_uri is None
    assert kemi_rr.ki_check_route_param(ctx, "lr") == -1


def test_in_dialog_our_route_removed_params_kept(core: Core) -> None:
    ctx = _req(core, "BYE", "sip:bob@127.0.0.1:5999", [f"<sip:127.0.0.1;lr;ftag={FTAG};nat=yes>"])
    assert kemi_rr.ki_loose_route(ctx) == 1
    assert _out(ctx) == ("sip:bob@127.0.0.1:5999", [])
    assert ctx.dst_uri is None  # R-URI is the remote target
    assert kemi_rr.ki_check_route_param(ctx, "nat=yes") == 1
    assert kemi_rr.ki_check_route_param(ctx, "^;lr") == 1  # the text starts with ';'
    assert kemi_rr.ki_check_route_param(ctx, "^lr") == -1
    assert kemi_rr.ki_check_route_param(ctx, "nat=no") == -1
    assert kemi_rr.ki_check_route_param(ctx, "([") == -1  # bad regex: false, not a crash
    assert kemi_rr.ki_is_direction(ctx, "downstream") == 1
    assert kemi_rr.ki_is_direction(ctx, "upstream") == -1
    assert kemi_rr.ki_next_hop_route(ctx) == -1
    assert get_pv(ctx, "$route_uri") == f"sip:127.0.0.1;lr;ftag={FTAG};nat=yes"


def test_upstream_direction(core: Core) -> None:
    # The callee sends the BYE: its From tag is the dialog's To tag, our ftag the caller's.
    ctx = _req(core, "BYE", "sip:alice@127.0.0.1:5998", [f"<sip:127.0.0.1;lr;ftag={FTAG}>"],
               totag=FTAG, from_tag=TTAG)
    assert kemi_rr.ki_loose_route(ctx) == 1
    assert kemi_rr.ki_is_direction(ctx, "upstream") == 1
    assert kemi_rr.ki_is_direction(ctx, "downstream") == -1
    assert get_pv(ctx, "$rdir(name)") == "upstream" and get_pv(ctx, "$rdir(id)") == 1
    assert kemi_rr.ki_is_direction(ctx, "sideways") == -1


def test_without_ftag_counts_as_downstream(core: Core) -> None:
    ctx = _req(core, "BYE", "sip:bob@127.0.0.1:5999", ["<sip:127.0.0.1;lr>"], from_tag="zz")
    assert kemi_rr.ki_loose_route(ctx) == 1
    assert kemi_rr.ki_is_direction(ctx, "downstream") == 1


def test_loose_next_hop_goes_to_du(core: Core) -> None:
    ctx = _req(core, "BYE", "sip:bob@127.0.0.1:5998",
               [f"<sip:127.0.0.1;lr;ftag={FTAG}>", "<sip:127.0.0.1:5999;lr>"])
    assert kemi_rr.ki_loose_route(ctx) == 1
    assert ctx.dst_uri == "sip:127.0.0.1:5999;lr"
    assert _out(ctx) == ("sip:bob@127.0.0.1:5998", ["sip:127.0.0.1:5999;lr"])
    assert kemi_rr.ki_next_hop_route(ctx) == 1


def test_strict_previous_hop_fixup(core: Core) -> None:
    # RFC 3261 16.4: a strict router put our Record-Route URI in the R-URI; the last Route
    # value is the remote target. Kamailio 5.6: R-URI <- last Route, $du <- next loose hop.
    ctx = _req(core, "BYE", f"sip:127.0.0.1;lr;ftag={TTAG};nat=yes",
               ["<sip:127.0.0.1:5999;lr>, <sip:bob@127.0.0.1:5998>"], totag=TTAG)
    assert kemi_rr.ki_loose_route(ctx) == 1
    assert _out(ctx) == ("sip:bob@127.0.0.1:5998", ["sip:127.0.0.1:5999;lr"])
    assert ctx.dst_uri == "sip:127.0.0.1:5999;lr"
    assert kemi_rr.ki_check_route_param(ctx, "nat=yes") == 1  # params of the old R-URI
    assert kemi_rr.ki_is_direction(ctx, "upstream") == 1  # ftag=callee1, From tag caller1
    assert get_pv(ctx, "$route_uri") == "sip:127.0.0.1:5999;lr"  # top Route as received


def test_strict_fixup_with_user_when_route_is_foreign(core: Core) -> None:
    ctx = _req(core, "BYE", "sip:alice@127.0.0.1", ["<sip:bob@127.0.0.1:5999>"])
    assert kemi_rr.ki_loose_route(ctx) == 1
    assert _out(ctx) == ("sip:bob@127.0.0.1:5999", [])
    assert ctx.dst_uri is None


def test_local_user_with_route_to_us_is_not_strict(core: Core) -> None:
    ctx = _req(core, "INVITE", "sip:alice@127.0.0.1", ["<sip:127.0.0.1;lr>", "<sip:127.0.0.1:5999;lr>"],
               totag=None)
    assert kemi_rr.ki_loose_route(ctx) == 1
    assert _out(ctx) == ("sip:alice@127.0.0.1", ["sip:127.0.0.1:5999;lr"])
    assert ctx.dst_uri == "sip:127.0.0.1:5999;lr"


def test_loose_route_mode_1_skips_strict_check(core: Core) -> None:
    ctx = _req(core, "BYE", "sip:127.0.0.1;lr", ["<sip:bob@127.0.0.1:5999;lr>"])
    assert kemi_rr.ki_loose_route_mode(ctx, 1) == 1
    assert _out(ctx) == ("sip:127.0.0.1;lr", ["sip:bob@127.0.0.1:5999;lr"])
    assert ctx.dst_uri == "sip:bob@127.0.0.1:5999;lr"
    ctx = _req(core, "BYE", "sip:127.0.0.1;lr", ["<sip:bob@127.0.0.1:5999;lr>"])
    assert kemi_rr.ki_loose_route_mode(ctx, 0) == 1
    assert _out(ctx) == ("sip:bob@127.0.0.1:5999;lr", [])


def test_strict_next_hop_swaps_with_ruri(core: Core) -> None:
    # 16.6 step 6: next hop without ;lr -> it becomes the R-URI, the R-URI the last Route.
    ctx = _req(core, "BYE", "sip:bob@127.0.0.1:5998",
               [f"<sip:127.0.0.1;lr;ftag={FTAG}>", "<sip:127.0.0.1:5999>, <sip:x@9.9.9.9;lr>"])
    assert kemi_rr.ki_loose_route(ctx) == 1
    assert _out(ctx) == ("sip:127.0.0.1:5999", ["sip:x@9.9.9.9;lr", "sip:bob@127.0.0.1:5998"])
    assert ctx.dst_uri is None


def test_preloaded_route_only_us(core: Core) -> None:
    ctx = _req(core, "INVITE", "sip:bob@127.0.0.1:5999", ["<sip:127.0.0.1;lr>"], totag=None)
    assert kemi_rr.ki_loose_route(ctx) == -3  # Kamailio 5.6: RR_PRELOADED, Route removed
    assert _out(ctx) == ("sip:bob@127.0.0.1:5999", [])
    ctx = _req(core, "INVITE", "sip:bob@127.0.0.1:5999", ["<sip:127.0.0.1;lr>"], totag=None)
    assert kemi_rr.ki_loose_route_preloaded(ctx) == 1


def test_preloaded_route_with_next_hops(core: Core) -> None:
    for routes in (["<sip:127.0.0.1;lr>, <sip:127.0.0.1:5999;lr>"], ["<sip:127.0.0.1:5999;lr>"]):
        ctx = _req(core, "INVITE", "sip:bob@9.9.9.9", routes, totag=None)
        assert kemi_rr.ki_loose_route(ctx) == 1
        assert ctx.dst_uri == "sip:127.0.0.1:5999;lr"
        assert _out(ctx) == ("sip:bob@9.9.9.9", ["sip:127.0.0.1:5999;lr"])
        ctx = _req(core, "INVITE", "sip:bob@9.9.9.9", routes, totag=None)
        assert kemi_rr.ki_loose_route_preloaded(ctx) == -1  # Kamailio: true only when it ends here
        assert ctx.dst_uri == "sip:127.0.0.1:5999;lr"


def test_preloaded_function_false_in_dialog(core: Core) -> None:
    ctx = _req(core, "BYE", "sip:bob@127.0.0.1:5999", [f"<sip:127.0.0.1;lr;ftag={FTAG}>"])
    assert kemi_rr.ki_loose_route_preloaded(ctx) == -1


def test_double_rr_both_entries_removed_socket_forced(core: Core) -> None:
    core.config.listen.append(ListenAddr("tcp", "127.0.0.1", 5062))
    ctx = _req(core, "BYE", "sip:bob@127.0.0.1:5999",
               [f"<sip:127.0.0.1;r2=on;lr;ftag={FTAG}>,"
                f"<sip:127.0.0.1:5062;transport=tcp;r2=on;lr;ftag={FTAG}>,<sip:127.0.0.1:5999;lr>"])
    assert kemi_rr.ki_loose_route(ctx) == 1
    assert _out(ctx) == ("sip:bob@127.0.0.1:5999", ["sip:127.0.0.1:5999;lr"])
    assert ctx.dst_uri == "sip:127.0.0.1:5999;lr"
    assert ctx.send_socket == "tcp:127.0.0.1:5062"  # leave from the second entry's socket
    assert kemi_rr.ki_check_route_param(ctx, "r2=on") == 1


def test_second_own_entry_without_r2_stays(core: Core) -> None:
    # A spiral: two single entries of ours; only the top one belongs to this pass.
    ctx = _req(core, "BYE", "sip:bob@127.0.0.1:5999",
               [f"<sip:127.0.0.1;lr;ftag={FTAG}>", "<sip:127.0.0.1;lr;ftag=X>"])
    assert kemi_rr.ki_loose_route(ctx) == 1
    assert _out(ctx)[1] == ["sip:127.0.0.1;lr;ftag=X"]
    assert ctx.dst_uri == "sip:127.0.0.1;lr;ftag=X"


def test_dialog_round_trip(core: Core) -> None:
    """INVITE record-routed with params, then the callee's BYE comes back with the route set."""
    inv = _req(core, "INVITE", "sip:bob@127.0.0.1:5998", [], totag=None)
    kemi_rr.ki_record_route(inv)
    kemi_rr.ki_add_rr_param(inv, ";nat=yes")
    sent = for_socket(inv, inv.msg, "udp", None).to_bytes()
    rr = [str(v) for v in parse_datagram(sent).headers("Record-Route")]
    bye = _req(core, "BYE", "sip:alice@127.0.0.1:5070", rr, totag=FTAG, from_tag=TTAG)
    assert kemi_rr.ki_loose_route(bye) == 1
    assert _out(bye) == ("sip:alice@127.0.0.1:5070", [])
    assert kemi_rr.ki_check_route_param(bye, ";nat=yes") == 1
    assert kemi_rr.ki_is_direction(bye, "upstream") == 1


def test_route_uri_before_loose_route(core: Core) -> None:
    ctx = _req(core, "BYE", "sip:bob@127.0.0.1:5999", ["<sip:127.0.0.1:5999;lr>"])
    assert get_pv(ctx, "$route_uri") == "sip:127.0.0.1:5999;lr"
    ctx = _req(core, "BYE", "sip:bob@127.0.0.1:5999", [])
    assert get_pv(ctx, "$route_uri") is None


def test_untouched_lines_keep_their_place(core: Core) -> None:
    ctx = _req(core, "BYE", "sip:bob@127.0.0.1:5998",
               [f"<sip:127.0.0.1;lr;ftag={FTAG}>", "<sip:127.0.0.1:5999;lr>"])
    names = [n for n, _ in ctx.msg.iter_headers()]
    kemi_rr.ki_loose_route(ctx)
    out = [n for n, _ in parse_datagram(ctx.msg.to_bytes()).iter_headers()]
    expected = list(names)
    expected.remove("Route")  # the first Route line (ours) went, the other stayed in place
    assert out == expected


def test_one_route_line_whose_entries_all_go_is_removed_in_place(core: Core) -> None:
    """Our two entries (double RR) on one line: the line goes, every other line unchanged."""
    line = f"<sip:127.0.0.1;r2=on;lr;ftag={FTAG}>, <sip:127.0.0.1;r2=on;lr;ftag={FTAG}>"
    ctx = _req(core, "BYE", "sip:bob@127.0.0.1:5999", [line])
    before = ctx.msg.to_bytes().decode()
    assert kemi_rr.ki_loose_route(ctx) == 1
    assert _out(ctx) == ("sip:bob@127.0.0.1:5999", [])
    assert ctx.msg.to_bytes().decode() == before.replace(f"Route: {line}\r\n", "")


def test_two_route_lines_whose_entries_all_go_are_removed_in_place(core: Core) -> None:
    """Our two entries (double RR) on two lines, as a UA copies them: both lines go, every
    other line unchanged; the params are those of the top entry, also the second time."""
    lines = [f"<sip:127.0.0.1;r2=on;lr;ftag={FTAG};nat=yes>",
             f"<sip:127.0.0.1;r2=on;lr;ftag={FTAG}>"]
    for _ in range(2):
        ctx = _req(core, "BYE", "sip:bob@127.0.0.1:5999", lines)
        before = ctx.msg.to_bytes().decode()
        assert kemi_rr.ki_loose_route(ctx) == 1
        assert _out(ctx) == ("sip:bob@127.0.0.1:5999", [])
        assert ctx.msg.to_bytes().decode() == before.replace(
            "".join(f"Route: {v}\r\n" for v in lines), "")
        assert rr_state(ctx).route_params == f";r2=on;lr;ftag={FTAG};nat=yes"


_ROUTE_SHAPES = [
    [f"<sip:127.0.0.1;lr;ftag={FTAG}>"], [f"<sip:127.0.0.1:5060;lr;ftag={FTAG};nat=yes>"],
    ["<sip:127.0.0.1;lr;r2=on>"], ["<sip:127.0.0.1;lr;r2=on>", "<sip:127.0.0.1;lr;r2=on>"],
    ["<sip:127.0.0.1;lr>, <sip:127.0.0.1:5999;lr>"], ["<sip:127.0.0.1:5999;lr>"],
    ["<sip:127.0.0.1:5999>"], ['"x" <sip:127.0.0.1;lr>'], ["  <sip:127.0.0.1;lr>  "],
    ["<sip:127.0.0.1:5999;lr>", "<sip:127.0.0.1;lr>"], ["<sip:127.0.0.1;transport=tcp;lr>"],
    ["<sips:127.0.0.1;lr>"], ["<tel:+123>"], ["<sip:127.0.0.1;lr"], ["<sip:127.0.0.1:99999;lr>"],
    ["sip:127.0.0.1;lr"], ["<sip:user@127.0.0.1;lr>"]]


@pytest.mark.parametrize("routes", _ROUTE_SHAPES)
@pytest.mark.parametrize("ruri", ["sip:bob@127.0.0.1:5999", "sip:127.0.0.1", "sip:bob@127.0.0.1"])
@pytest.mark.parametrize(("totag", "mode"), [(TTAG, 0), (None, 0), (TTAG, 1)])
def test_one_own_entry_shortcut_is_the_general_path(core: Core, monkeypatch: pytest.MonkeyPatch,
                                                     routes: list[str], ruri: str,
                                                     totag: str | None, mode: int) -> None:
    """loose_route's shortcut for one Route line of our own entry answers, edits and records
    what the general path (RouteSet) does, and leaves every other shape to it."""
    from kemi_rr import loose

    data = _req(core, "BYE", ruri, routes, totag=totag).msg.to_bytes()

    def outcome() -> tuple[object, ...]:
        ctx = context(core, data)
        try:
            code: object = loose.loose_route(ctx, mode)
        except Exception as exc:  # (the same exception either way)
            code = type(exc).__name__
        st = rr_state(ctx)
        return (code, ctx.msg.to_bytes(), ctx.dst_uri, ctx.send_socket, st.route_uri,
                st.route_params, st.routed)

    fast = outcome()
    monkeypatch.setattr(loose, "_only_own_entry", lambda *a: None)
    assert fast == outcome()


def test_one_own_entry_shortcut_taken(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    """The usual in-dialog BYE takes the shortcut (no RouteSet made)."""
    from kemi_rr import loose

    def no_routeset(msg: object) -> None:
        raise AssertionError("general path")

    monkeypatch.setattr(loose, "RouteSet", no_routeset)
    ctx = _req(core, "BYE", "sip:bob@127.0.0.1:5999", [f"<sip:127.0.0.1;lr;ftag={FTAG}>"])
    assert kemi_rr.ki_loose_route(ctx) == 1
    assert _out(ctx) == ("sip:bob@127.0.0.1:5999", [])
    assert rr_state(ctx).route_params == f";lr;ftag={FTAG}"
