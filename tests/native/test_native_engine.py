"""NativeEngine: callback names, named routes for tm, reload, check_blocks, built-ins."""

from __future__ import annotations

import pytest

from kemi_core.engine import Engine
from kemi_core.errors import ScriptError
from kemi_core.native import NativeEngine, check_blocks
from kemi_core.runtime.context import RouteType


def full_engine(h):
    return h.engine(
        h.block('mark("request");'),
        h.block('mark("reply");', "reply_route"),
        h.block('mark("onsend");', "onsend_route"),
        h.block('mark("route-X");', "route", "X"),
        h.block('mark("failure-X");', "failure_route", "X"),
        h.block('mark("branch-B");', "branch_route", "B"),
        h.block('mark("onreply-R");', "onreply_route", "R"),
        h.block('mark("bf-F");', "event_route", "tm:branch-failure:F"),
        h.block('mark("event");', "event_route", "xhttp:request"),
    )


def test_engine_protocol_and_callbacks(h, rec) -> None:
    eng = full_engine(h)
    assert isinstance(eng, Engine) and eng.name == "native"
    for name in ("ksr_request_route", "ksr_reply_route", "ksr_onsend_route", "request_route"):
        assert eng.has_route(name)
        eng.run(name, h.ctx())
    assert [a[0] for _, a in rec.calls] == ["request", "reply", "onsend", "request"]


@pytest.mark.parametrize(("name", "route_type", "expected"), [
    ("failure_route:X", RouteType.REQUEST, "failure-X"),
    ("failure_route[X]", RouteType.REQUEST, "failure-X"),
    ("route:X", RouteType.FAILURE, "route-X"),
    ("X", RouteType.FAILURE, "failure-X"),
    ("X", RouteType.REQUEST, "route-X"),
    ("B", RouteType.BRANCH, "branch-B"),
    ("B", RouteType.REQUEST, "branch-B"),
    ("R", RouteType.TM_ONREPLY, "onreply-R"),
    ("F", RouteType.BRANCH_FAILURE, "bf-F"),
    ("branch_failure_route:F", RouteType.REQUEST, "bf-F"),
    ("event_route[tm:branch-failure:F]", RouteType.REQUEST, "bf-F"),
    ("event_route[xhttp:request]", RouteType.EVENT, "event"),
    ("event_route:xhttp:request", RouteType.EVENT, "event"),
    ("xhttp:request", RouteType.EVENT, "event"),
])
def test_named_routes_for_tm_and_events(h, rec, name: str, route_type: RouteType,
                                        expected: str) -> None:
    eng = full_engine(h)
    ctx = h.ctx()
    ctx.route_type = route_type
    assert eng.run(name, ctx) == 1
    assert rec.calls == [("mark", (expected,))]


def test_unknown_names(h) -> None:
    eng = full_engine(h)
    assert not eng.has_route("failure_route:NOPE") and not eng.has_route("NOPE")
    with pytest.raises(ScriptError, match="no route for 'NOPE'"):
        eng.run("NOPE", h.ctx())
    eng = h.engine(h.block("exit;"))
    assert not eng.has_route("ksr_reply_route")


def test_configured_callback_names(h, rec) -> None:
    h.core.config.kemi_callbacks["request_route_callback"] = "my_main"
    eng = h.engine(h.block('mark("main");'))
    eng.run("my_main", h.ctx())
    assert rec.calls == [("mark", ("main",))]


def test_reload_swaps_and_keeps_old_on_error(h, rec) -> None:
    source = [[h.block('mark("v1");')]]
    eng = NativeEngine(h.core, reload_source=lambda: source[0])
    eng.load()
    eng.run("ksr_request_route", h.ctx())
    source[0] = [h.block('mark("v2");')]
    eng.reload()
    eng.run("ksr_request_route", h.ctx())
    source[0] = [h.block('\n nosuch("v3");\n route(GONE);')]
    with pytest.raises(ScriptError) as info:
        eng.reload()
    # Every error is reported, with its place.
    assert "test.cfg:2:2: unknown function 'nosuch'" in str(info.value)
    assert "test.cfg:3:2: route(GONE)" in str(info.value)
    eng.run("ksr_request_route", h.ctx())
    assert [a[0] for _, a in rec.calls] == ["v1", "v2", "v2"]


def test_has_route_follows_a_reload(h) -> None:
    source = [[h.block("exit;")]]
    eng = NativeEngine(h.core, reload_source=lambda: source[0])
    eng.load()
    assert not eng.has_route("X") and not eng.has_route("X")
    source[0] = [h.block("exit;"), h.block("exit;", "failure_route", "X")]
    eng.reload()
    assert eng.has_route("X") and eng.has_route("failure_route:X")
    source[0] = [h.block("exit;")]
    eng.reload()
    assert not eng.has_route("X")


def test_reload_without_source_and_constructor_checks(h) -> None:
    eng = h.engine(h.block("exit;"))
    with pytest.raises(ScriptError, match="reload_source"):
        eng.reload()
    with pytest.raises(ValueError):
        NativeEngine(h.core)


def test_check_blocks_collects_every_error_sorted(h) -> None:
    blocks = [
        h.block("exit", line=30),                                  # syntax error
        h.block("nosuch();\n route(NONE);\n $ci = 1;", "route", "A", line=10),
        h.block("exit;", "route", "A", line=20),                    # duplicate
    ]
    errors = check_blocks(h.core, blocks)
    assert [(e.line, e.column) for e in errors] == [(10, 1), (11, 2), (12, 2), (20, None), (30, 5)]
    assert "unknown function 'nosuch'" in errors[0].reason
    assert errors.unknown_functions == []


def test_check_blocks_syntax_only_lists_unknown_functions(h) -> None:
    blocks = [h.block('foo(1);\nif (bar("x", 2)) route(A);\n$var(x) = $sht(ipban=>$si);'),
              h.block("exit;", "route", "A")]
    errors = check_blocks(h.core, blocks, syntax_only=True)
    assert list(errors) == []
    assert errors.unknown_functions == [("foo", "test.cfg", 1), ("bar", "test.cfg", 2)]
    assert errors.unknown_pvs == [("$sht(ipban=>$si)", "test.cfg", 3)]
    assert [e.reason for e in check_blocks(h.core, blocks)][:1] == [
        "unknown function 'foo' (is its module loaded?)"]


# ---- built-in core functions ----------------------------------------------------------------
def test_flags(h, rec) -> None:
    rc, ctx = h.run("setflag(1); setflag(3); resetflag(1); if (isflagset(3) && !isflagset(1)) "
                    "mark(\"ok\"); setbflag(6); if (isbflagset(6)) mark(\"b\"); setsflag(2);")
    assert ctx.flags == 1 << 3 and ctx.bflags == 1 << 6
    assert [a[0] for _, a in rec.calls] == ["ok", "b"]


def test_ruri_rewriting_family(h) -> None:
    _, ctx = h.run('strip(1); prefix("+49"); rewritehost("example.net"); setport("5080");')
    assert ctx.msg.ruri.startswith("sip:+49ob@example.net:5080")
    _, ctx = h.run('seturi("sip:carol@10.0.0.9"); setuser("dave"); strip_tail(1);'
                   'sethostport("h.example:7000");')
    assert ctx.msg.ruri == "sip:dav@h.example:7000"
    _, ctx = h.run('rewriteuri("sip:x@y"); revert_uri();')
    assert ctx.msg.ruri == "sip:bob@127.0.0.1:5060;transport=udp"


def test_append_branch_force_rport_and_socket(h) -> None:
    _, ctx = h.run('$du = "sip:10.9.9.9"; append_branch(); append_branch("sip:c@d", "0.5");'
                   'force_rport(); force_send_socket("udp:127.0.0.1:5060"); set_reply_no_connect();')
    assert [(b.uri, b.dst_uri, b.q) for b in ctx.branches] == [
        ("sip:bob@127.0.0.1:5060;transport=udp", "sip:10.9.9.9", -1), ("sip:c@d", None, 500)]
    assert ctx.force_rport and ctx.send_socket == "udp:127.0.0.1:5060"
    assert ctx.extra["reply_no_connect"] is True


class Capture:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, int, bytes]] = []

    def send(self, proto: str, host: str, port: int, data: bytes,
             local: tuple[str, int] | None = None) -> bool:
        self.sent.append((proto, host, port, data))
        return True

    def local_address(self, proto: str) -> tuple[str, int]:
        return ("127.0.0.1", 5060)


def test_forward_sends_statelessly(h) -> None:
    cap = Capture()
    h.core.attach_transport(cap)
    rc, _ = h.run('forward("127.0.0.2", 5099);')
    assert rc == 1
    proto, host, port, data = cap.sent[0]
    assert (proto, host, port) == ("udp", "127.0.0.2", 5099)
    assert data.startswith(b"INVITE sip:bob@127.0.0.1") and b"Max-Forwards: 70" in data  # forward() leaves it to maxfwd
