"""Exports marked ``message_fact`` (KSR.is_INVITE, is_method_in, siputils.is_request ...)
answered in Lua from the message's kind and method, read from Python once per route run."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kemi_core.api import ReturnKind, export, message_fact
from kemi_core.sip import parse_datagram
from kemi_core.testing import ENGINE_INVITE, add_core_exports, engine_reply
from kemi_engine_lua.resolver import Resolver

ACK = (b"ACK sip:bob@example.com SIP/2.0\r\n"
       b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-eng-2\r\n"
       b"From: <sip:alice@example.com>;tag=a1\r\n"
       b"To: <sip:bob@example.com>;tag=b1\r\n"
       b"Call-ID: eng-test-1@127.0.0.1\r\n"
       b"CSeq: 1 ACK\r\n"
       b"Content-Length: 0\r\n\r\n")
REPLY = engine_reply("180 Ringing")
LOWER = ACK.replace(b"ACK sip", b"ack sip").replace(b"CSeq: 1 ACK", b"CSeq: 1 ack")

#: every method test of the script below, in order
TESTS = ('KSR.is_INVITE()', 'KSR.is_ACK()', 'KSR.is_method_in("IS")', 'KSR.is_method_in("AB")',
         'KSR.is_method_in("")', 'KSR.t.is_request()', 'KSR.t.is_reply()')
SCRIPT = ("function ksr_request_route()\n  KSR.t.mark(" +
          ' .. "," .. '.join(f"tostring({t})" for t in TESTS) + ")\nend\n")


def _is_request(ctx: Any) -> int:
    return 1 if ctx.msg.is_request else -1


def _is_reply(ctx: Any) -> int:
    return -1 if ctx.msg.is_request else 1


message_fact(_is_request, "kind", 1, -1)
message_fact(_is_reply, "kind", -1, 1)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The facts the prelude read (one entry per read), for engines made after it."""
    seen: list[Any] = []
    facts = Resolver.facts

    def counting(self: Resolver) -> Any:
        seen.append(facts(self))
        return seen[-1]
    monkeypatch.setattr(Resolver, "facts", counting)
    return seen


@pytest.fixture
def registry(core, calls):
    add_core_exports(core)
    core.registry.add([calls.export("t", "mark", "s"),
                       export("t", "is_request", _is_request, "", ReturnKind.INT),
                       export("t", "is_reply", _is_reply, "", ReturnKind.INT)])
    return core.registry


def _python_answers(core: Any, make_ctx: Any, data: bytes) -> str:
    """What the exports themselves answer for ``data`` (Lua's tostring of each result)."""
    ctx = make_ctx(data)
    out = []
    for test in TESTS:
        name, _, arg = test.removeprefix("KSR.").partition("(")
        module, _, fname = name.rpartition(".")
        exp = core.registry.lookup(module, fname)
        args = [arg.strip('")')] if arg != ")" else []
        result = exp.func(ctx, *args)
        out.append(str(result).lower())
    return ",".join(out)


@pytest.mark.parametrize("data", [ENGINE_INVITE, ACK, REPLY, LOWER], ids=["invite", "ack", "reply", "lower"])
def test_answers_are_the_exports_own_with_one_read_per_run(registry, core, calls, make_engine,
                                                           make_ctx, reads, data):
    make_engine(SCRIPT)
    for _ in range(2):
        assert core.run_route("ksr_request_route", make_ctx(data)) == 1
    expected = _python_answers(core, make_ctx, data)
    assert calls.args("mark") == [(expected,), (expected,)]
    assert len(reads) == 2  # once per run, the second run reads its own message again


def test_no_question_no_read(registry, core, make_engine, make_ctx, reads):
    make_engine("function ksr_request_route() KSR.t.mark('x') end")
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    assert reads == []


def test_a_nested_run_reads_its_own_message_and_gives_the_callers_back(registry, core, calls,
                                                                        make_engine, make_ctx):
    def nested(ctx: Any) -> int:
        return core.run_route("inner", make_ctx(ACK))

    core.registry.add([export("t", "nested", nested, "", ReturnKind.INT)])
    make_engine("""
function inner() KSR.t.mark("inner " .. tostring(KSR.is_ACK()) .. tostring(KSR.is_INVITE())) end
function ksr_request_route()
  KSR.t.mark("outer " .. tostring(KSR.is_INVITE()))
  KSR.t.nested()
  KSR.t.mark("outer " .. tostring(KSR.is_INVITE()) .. tostring(KSR.is_ACK()))
end
""")
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    assert calls.args("mark") == [("outer true",), ("inner truefalse",), ("outer truefalse",)]


def test_a_message_replaced_by_an_editing_module_is_read_again(registry, core, calls,
                                                               make_engine, make_ctx, reads):
    def replace(ctx: Any) -> int:  # as textops does after an edit: the message re-parsed
        ctx.msg = parse_datagram(ACK)
        return 1

    core.registry.add([export("textops", "replace", replace, "", ReturnKind.INT)])
    make_engine("""function ksr_request_route()
  KSR.t.mark(tostring(KSR.is_INVITE()))
  KSR.textops.replace()
  KSR.t.mark(tostring(KSR.is_INVITE()) .. tostring(KSR.is_ACK()))
end
""")
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    assert calls.args("mark") == [("true",), ("falsetrue",)]
    assert len(reads) == 2


def test_wrapped_exports_are_called_through_python(registry, core, calls, make_engine, make_ctx):
    """The debugger's cfgtrace wraps every export: each call must reach its wrapper."""
    def traced(exp: Any) -> Any:
        def func(ctx: Any, *args: Any) -> Any:
            calls.rec("traced " + exp.name, ctx)
            return exp.func(ctx, *args)
        return export(exp.module, exp.name, func, "s" * len(exp.params), exp.returns)

    core.registry.wrap_all(traced)
    make_engine('function ksr_request_route() KSR.is_INVITE(); KSR.is_method_in("I") end')
    assert core.run_route("ksr_request_route", make_ctx()) == 1
    assert calls.names() == ["traced is_INVITE", "traced is_method_in"]


def test_argument_errors_and_unknown_letters_are_the_exports(registry, core, calls, make_engine,
                                                             make_ctx, caplog):
    engine = make_engine("""function ksr_request_route()
  KSR.t.mark(tostring(KSR.is_method_in("XI")) .. tostring(KSR.is_method_in(7)))
  KSR.t.mark(tostring(KSR.is_method_in("XI")) .. tostring(KSR.is_method_in("IX")))
  KSR.is_INVITE("extra")
end
""")
    ctx = make_ctx()
    with caplog.at_level(logging.ERROR):
        assert core.run_route("ksr_request_route", ctx) == -1
    assert calls.args("mark") == [("falsefalse",), ("falsetrue",)]  # "IX": I matches first
    flags = [r.getMessage() for r in caplog.records if "unsupported method flag" in r.getMessage()]
    assert flags == ["is_method_in: unsupported method flag: X",
                     "is_method_in: unsupported method flag: 7",
                     "is_method_in: unsupported method flag: X"]
    # the script's line, not the prelude's wrapper
    assert ctx.fault == f"{engine.settings.scripts[0]}:4: KSR.is_INVITE(): expected 0 " \
        "arguments, got 1 (LuaArgError)"


def test_a_reply_without_a_readable_cseq_fails_as_the_export_does(registry, core, make_engine,
                                                                  make_ctx):
    bad = REPLY.replace(b"CSeq: 1 INVITE", b"CSeq: x")
    make_engine("function ksr_request_route() KSR.t.mark(tostring(KSR.t.is_reply())); "
                "KSR.is_INVITE() end")
    lua_ctx = make_ctx(bad)
    assert core.run_route("ksr_request_route", lua_ctx) == -1
    with pytest.raises(Exception) as raised:
        core.registry.lookup("", "is_INVITE").func(make_ctx(bad))
    assert lua_ctx.fault is not None and type(raised.value).__name__ in lua_ctx.fault
