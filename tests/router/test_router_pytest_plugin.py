"""The kemi pytest plugin run by pytest itself (pytester): the fixture comes from the pytest11
entry point, script failures fail the test with file:line and traceback, defines and
independent routers work, and errors can be inspected instead."""

from __future__ import annotations

import pytest

from .conftest import FAILOVER_CFGS, SCRIPTS

pytest_plugins = ["pytester"]

MESSAGES = f'''
import sys
sys.path.insert(0, {str(SCRIPTS.parent)!r})
from conftest import CANCEL, KEEPALIVE, invite
'''


def test_fixture_comes_from_the_entry_point(pytester: pytest.Pytester) -> None:
    """A fresh pytest process, no conftest: installing kemi-core is all it takes."""
    pytester.makepyfile(MESSAGES + f'''
def test_relay(kemi_router):
    router = kemi_router({str(FAILOVER_CFGS["lua"])!r})
    out = router.request(invite())
    assert [f.dest for f in out.forwarded] == ["udp:127.0.0.1:5080"]
    busy = router.reply(out.forwarded[0], 486, "Busy Here")
    assert [f.dest for f in busy.forwarded] == ["udp:127.0.0.1:5090"]
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    plugins = pytester.runpytest_subprocess("--trace-config", "-p", "no:cacheprovider")
    plugins.stdout.fnmatch_lines(["*kemi_core.testing.pytest_plugin*"])


LUA_CFG = '''#!KAMAILIO
debug=2
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "app_lua.so"
modparam("app_lua", "load", "{script}")
cfgengine "lua"
'''

BROKEN_LUA = '''
function ksr_request_route()
	KSR.info("about to fail\\n")
	local route = nil
	KSR.sl.sl_send_reply(200, route.reason)
end
'''


def _broken_lua(pytester: pytest.Pytester) -> None:
    script = pytester.path / "broken.lua"
    script.write_text(BROKEN_LUA)
    (pytester.path / "kamailio.cfg").write_text(LUA_CFG.format(script=script))


def test_lua_error_fails_the_test_with_file_line_and_traceback(pytester: pytest.Pytester) -> None:
    _broken_lua(pytester)
    pytester.makepyfile(MESSAGES + '''
def test_keepalive(kemi_router):
    router = kemi_router("kamailio.cfg")
    out = router.request(KEEPALIVE)
    assert out.replies
''')
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*ScriptFailure: the routing script failed while routing the request:*",
        "*broken.lua:5: attempt to index a nil value (local 'route')*",
        "*stack traceback:*",
        "*broken.lua:5: in function*ksr_request_route*",
    ])
    assert "assert out.replies" not in result.stdout.str()  # it failed at the step, not later


def test_errors_can_be_inspected_instead(pytester: pytest.Pytester) -> None:
    _broken_lua(pytester)
    pytester.makepyfile(MESSAGES + '''
def test_keepalive(kemi_router):
    router = kemi_router("kamailio.cfg", fail_on_script_error=False)
    out = router.request(KEEPALIVE)
    assert [r.status for r in out.replies] == [500]
    assert "broken.lua:5:" in out.errors[0]
    assert "about to fail" in out.logs
''')
    pytester.runpytest().assert_outcomes(passed=1)


def test_python_error_fails_the_test_with_its_traceback(pytester: pytest.Pytester) -> None:
    (pytester.path / "routing.py").write_text('''import KSR


def pick(targets):
    return targets[3]


def ksr_request_route():
    return pick(["sip:127.0.0.1:5080"])
''')
    (pytester.path / "kamailio.cfg").write_text('''#!KAMAILIO
loadmodule "sl.so"
loadmodule "app_python3s.so"
modparam("app_python3s", "load", "routing.py")
cfgengine "python"
''')
    pytester.makepyfile(test_py=MESSAGES + '''
def test_keepalive(kemi_router):
    kemi_router("kamailio.cfg").request(KEEPALIVE)
''')
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*routing.py:5: error in ksr_request_route(): IndexError: list index out of range*",
        "*Traceback (most recent call last):*",
        '*routing.py", line 9, in ksr_request_route*',
        '*routing.py", line 5, in pick*',
    ])


def test_native_fault_in_a_failure_route_fails_at_advance(pytester: pytest.Pytester) -> None:
    (pytester.path / "kamailio.cfg").write_text('''#!KAMAILIO
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "pv.so"
modparam("tm", "fr_timer", 2000)
request_route {
	$du = "sip:127.0.0.1:5080";
	t_on_failure("NEXT");
	t_relay();
}
failure_route[NEXT] {
	if (1 / $var(zero)) { exit; }
	t_relay();
}
''')
    pytester.makepyfile(MESSAGES + '''
def test_timeout(kemi_router):
    router = kemi_router("kamailio.cfg")
    router.request(invite())
    router.advance(2.5)
''')
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*the routing script failed while advancing 2.5 s:*",
        "*kamailio.cfg:12:*if condition failed*",
    ])


def test_a_script_refused_at_load_fails_with_its_place(pytester: pytest.Pytester) -> None:
    script = pytester.path / "syntax.lua"
    script.write_text("function ksr_request_route()\n  if then\nend\n")
    (pytester.path / "kamailio.cfg").write_text(LUA_CFG.format(script=script))
    pytester.makepyfile('''
def test_load(kemi_router):
    kemi_router("kamailio.cfg")
''')
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*kemi refused the config or its script: *syntax.lua:2:*"])


def test_defines_and_independent_routers(pytester: pytest.Pytester) -> None:
    (pytester.path / "kamailio.cfg").write_text('''#!KAMAILIO
loadmodule "sl.so"
loadmodule "pv.so"
request_route {
#!ifdef WITH_MAINTENANCE
	sl_send_reply("503", "Maintenance");
#!else
	$var(seen) = $var(seen) + 1;
	sl_send_reply("200", "OK");
#!endif
}
''')
    pytester.makepyfile(MESSAGES + '''
def test_two_routers(kemi_router):
    normal = kemi_router("kamailio.cfg")
    down = kemi_router("kamailio.cfg", defines={"WITH_MAINTENANCE": None})
    assert normal.request(KEEPALIVE).replies[0].status == 200
    assert normal.request(KEEPALIVE).replies[0].status == 200
    assert down.request(KEEPALIVE).replies[0].status == 503
    other = kemi_router("kamailio.cfg")
    assert other.request(KEEPALIVE).replies[0].status == 200
    assert (normal.vars["seen"], other.vars["seen"]) == (2, 1)
    assert "seen" not in down.vars
''')
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_guide_example_runs_as_written(pytester: pytest.Pytester) -> None:
    """docs/testing-scripts.md: its router.lua, kamailio.cfg and tests/test_routing.py, copied
    verbatim into a fresh project, pass."""
    guide = (SCRIPTS.parents[2] / "docs" / "testing-scripts.md").read_text()
    blocks = guide.split("```")[1::2]  # the fenced blocks, in order
    lua, cfg, tests = blocks[0], blocks[1], blocks[2]
    assert lua.startswith("lua\n") and cfg.startswith("\n#!KAMAILIO") and tests.startswith("python\n")
    (pytester.path / "router.lua").write_text(lua.removeprefix("lua\n"))
    (pytester.path / "kamailio.cfg").write_text(cfg.lstrip("\n"))
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_routing.py").write_text(tests.removeprefix("python\n"))
    pytester.runpytest("tests").assert_outcomes(passed=3)
