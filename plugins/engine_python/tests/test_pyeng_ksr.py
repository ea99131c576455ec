"""KSR calls from a Python script: every parameter combination, kind checks, return kinds."""

from __future__ import annotations

import itertools
import types
from typing import Any

import attrs
import pytest

from kemi_core.api import MsgContext, ReturnKind, export

COMBOS = ["".join(c) for n in range(0, 4) for c in itertools.product("is", repeat=n)]
COMBOS += ["ssss", "isis", "sisis", "iiiiii", "ssssss", "isisis"]


def recorder_exports(calls: list[tuple[str, Any, tuple[Any, ...]]]) -> list[Any]:
    """One export per combination, named ``f_<letters>``, recording (name, ctx, args)."""
    exps = []
    for combo in COMBOS:
        name = f"f_{combo or 'none'}"

        def func(ctx: MsgContext, *args: Any, _name: str = name) -> int:
            calls.append((_name, ctx, args))
            return len(args) + 1

        exp = export("combo", name, func, combo)
        exps.append(attrs.evolve(exp, param_names=[f"p{i}" for i in range(len(combo))]))
    return exps


def sample(combo: str) -> list[Any]:
    return [7 + i if c == "i" else f"s{i}" for i, c in enumerate(combo)]


def test_every_parameter_combination_reaches_the_export_with_the_context(pyenv: Any) -> None:
    calls: list[tuple[str, Any, tuple[Any, ...]]] = []
    lines = []
    for combo in COMBOS:
        args = ", ".join(repr(a) for a in sample(combo))
        lines.append(f"        results.append(KSR.combo.f_{combo or 'none'}({args}))")
    script = (
        "import KSR\nresults = []\n\ndef mod_init():\n    return H()\n\nclass H:\n"
        "    def ksr_request_route(self, msg):\n" + "\n".join(lines) + "\n        return 1\n"
    )
    env = pyenv()
    engine = env.start(script, recorder_exports(calls))
    ctx = env.ctx()
    assert env.core.run_route("ksr_request_route", ctx) == 1
    assert [c[0] for c in calls] == [f"f_{c or 'none'}" for c in COMBOS]
    for (name, got_ctx, args), combo in zip(calls, COMBOS, strict=True):
        assert got_ctx is ctx, name
        assert list(args) == sample(combo), name
    results = engine.image.module.results
    assert results == [len(c) + 1 for c in COMBOS]


def test_bool_is_accepted_for_int_and_kinds_are_checked(pyenv: Any) -> None:
    calls: list[tuple[str, Any, tuple[Any, ...]]] = []
    env = pyenv()
    env.start("import KSR\ndef mod_init():\n    return H()\nclass H:\n"
              "    def ksr_request_route(self, msg):\n        return 1\n",
              recorder_exports(calls))
    ksr = env.module.get_state().ksr
    env.module.get_state().cur[0] = env.ctx()
    assert ksr.combo.f_is(True, "x") == 3
    with pytest.raises(TypeError, match=r"KSR\.combo\.f_is\(int p0, str p1\) -> int: argument 1 must be int, not str"):
        ksr.combo.f_is("1", "x")
    with pytest.raises(TypeError, match=r"argument 2 must be str, not int"):
        ksr.combo.f_is(1, 2)
    with pytest.raises(TypeError, match=r"argument 1 must be int, not NoneType"):
        ksr.combo.f_i(None)
    with pytest.raises(TypeError, match=r"KSR\.combo\.f_ss\(\) missing 1 required positional"):
        ksr.combo.f_ss("a")
    with pytest.raises(TypeError, match=r"KSR\.combo\.f_s\(\) takes 1 positional argument but 2"):
        ksr.combo.f_s("a", "b")
    assert [c[0] for c in calls] == ["f_is"]


def test_ksr_callables_are_plain_functions_built_once(pyenv: Any) -> None:
    env = pyenv()
    env.start("def mod_init():\n    return H()\nclass H:\n"
              "    def ksr_request_route(self, msg):\n        return 1\n",
              [export("", "info", lambda ctx, text: 1, "s"),
               export("sl", "send_reply", lambda ctx, code, reason: 1, "is")])
    import sys
    ksr = sys.modules["KSR"]
    assert ksr is env.module.get_state().ksr
    assert isinstance(ksr.info, types.FunctionType)
    assert isinstance(ksr.sl.send_reply, types.FunctionType)
    assert ksr.sl.send_reply.__qualname__ == "KSR.sl.send_reply"
    assert ksr.sl.send_reply is ksr.sl.send_reply  # not rebuilt per access
    assert "int code, str reason" in (ksr.sl.send_reply.__doc__ or "")


@pytest.mark.parametrize(("kind", "value", "expected"), [
    (ReturnKind.INT, 5, 5), (ReturnKind.INT, -2, -2), (ReturnKind.INT, True, 1),
    (ReturnKind.INT, False, -1),
    (ReturnKind.BOOL, True, True), (ReturnKind.BOOL, False, False), (ReturnKind.BOOL, 1, True),
    (ReturnKind.BOOL, -1, False), (ReturnKind.BOOL, 0, False),
    (ReturnKind.XVAL, "abc", "abc"), (ReturnKind.XVAL, 42, 42), (ReturnKind.XVAL, None, None),
    (ReturnKind.XVAL, b"raw", "raw"),
    (ReturnKind.NONE, 17, None),
])
def test_return_kinds(pyenv: Any, kind: ReturnKind, value: Any, expected: Any) -> None:
    env = pyenv()
    env.start("def mod_init():\n    return H()\nclass H:\n"
              "    def ksr_request_route(self, msg):\n        return 1\n",
              [export("ret", "get", lambda ctx: value, "", kind)])
    got = env.module.get_state().ksr.ret.get()
    assert got == expected
    assert type(got) is type(expected)


def test_nested_runs_see_their_own_context_and_restore_the_outer_one(pyenv: Any) -> None:
    seen: list[Any] = []
    inner_ctx: list[MsgContext] = []

    def relay(ctx: MsgContext) -> int:
        branch = ctx.core.new_context(ctx.msg.copy(), ctx.rcv)
        inner_ctx.append(branch)
        return ctx.core.run_route("branch_one", branch)

    def who(ctx: MsgContext) -> int:
        seen.append(ctx)
        return 1

    env = pyenv()
    env.start("""\
        import KSR
        def mod_init():
            return H()
        class H:
            def ksr_request_route(self, msg):
                KSR.t.who()
                KSR.t.relay()
                KSR.t.who()
                return 1
            def branch_one(self, msg):
                KSR.t.who()
                return 1
        """, [export("t", "relay", relay), export("t", "who", who)])
    ctx = env.ctx()
    assert env.core.run_route("ksr_request_route", ctx) == 1
    assert seen == [ctx, inner_ctx[0], ctx]
    assert env.module.get_state().cur[0] is None


def test_builtin_x_exit_and_drop_exist_when_no_module_exports_them(pyenv: Any) -> None:
    env = pyenv()
    env.start("def mod_init():\n    return H()\nclass H:\n"
              "    def ksr_request_route(self, msg):\n        return 1\n")
    ksr = env.module.get_state().ksr
    assert callable(ksr.x.exit) and callable(ksr.x.drop)


def test_api_list_rpc(pyenv: Any) -> None:
    env = pyenv()
    env.start("def mod_init():\n    return H()\nclass H:\n"
              "    def ksr_request_route(self, msg):\n        return 1\n",
              [export("sl", "send_reply", lambda ctx, code, reason: 1, "is")])
    out = env.core.rpc_commands["app_python.api_list"].func(env.core, [])
    entry = next(m for m in out["methods"] if m["func"] == "sl.send_reply")
    assert entry["params"] == ["int", "str"] and entry["ret"] == "int"
    assert out["msize"] == len(out["methods"])


def test_x_modf_takes_extra_arguments_as_in_the_other_engines(pyenv: Any) -> None:
    """KSR.x.modf is declared variadic (KemiExport.variadic): Python passes the extras on too."""
    from kemi_core.api import CfgFunction
    from kemi_core.testing import add_core_exports

    seen: list[tuple[Any, ...]] = []

    def cfg_fn(ctx: Any, n: int, text: str = "-") -> int:
        seen.append((n, text))
        return 4

    env = pyenv()
    add_core_exports(env.core)
    env.core.add_cfg_function(CfgFunction("t", "t_cfg", cfg_fn, 1, 2, (0,)))
    env.start("import KSR\ndef mod_init():\n    return H()\nclass H:\n"
              "    def ksr_request_route(self, msg):\n"
              "        return KSR.x.modf('t_cfg', 16, 'txt') + KSR.x.modf('t_cfg', '3')\n")
    assert env.core.run_route("ksr_request_route", env.ctx()) == 8
    assert seen == [(16, "txt"), (3, "-")]
    ksr = env.module.get_state().ksr
    with pytest.raises(TypeError, match=r"argument 2 must be str, not float"):
        ksr.x.modf("t_cfg", 1.5)
