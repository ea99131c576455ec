"""tm's has_transaction compiled (kemi_core.sip.transaction_tester) against the method, the
reference: the same answer with no tm state, a state without a transaction, one with a
transaction, a None state, and (through the method) a mod_state that is not a dict."""

from __future__ import annotations

from typing import Any

import pytest

import kemi_tm
from kemi_core.sip import transaction_tester
from kemi_core.testing import context, offline_core, request
from kemi_tm.service import TmService

pytestmark = pytest.mark.skipif(transaction_tester is None, reason="_fast not built")


class _Mapping(dict):  # type: ignore[type-arg]
    """A mod_state of another type than dict (the compiled form hands it to the method)."""


def test_compiled_has_transaction_answers_as_the_method() -> None:
    core, _ = offline_core(("tm", kemi_tm))
    tm: Any = core.services["tm"]
    assert type(tm.has_transaction).__name__ == "builtin_function_or_method"
    data = request("INVITE", "sip:bob@127.0.0.1", 5070)

    def both(ctx: Any) -> tuple[Any, Any]:
        return tm.has_transaction(ctx), TmService.has_transaction(tm, ctx)

    ctx = context(core, data)
    assert both(ctx) == (False, False)  # nothing of tm's yet
    ctx.mod_state["tm"] = None
    assert both(ctx) == (False, False)
    del ctx.mod_state["tm"]
    tm.new_transaction(ctx)
    assert both(ctx) == (True, True)
    ctx.mod_state["tm"].tx = None
    assert both(ctx) == (False, False)
    other = context(core, request("INVITE", "sip:bob@127.0.0.1", 5070))
    other.mod_state = _Mapping()
    assert both(other) == (False, False)
    tm.new_transaction(other)
    assert type(other.mod_state) is _Mapping and both(other) == (True, True)


def test_a_subclass_keeps_its_own_method() -> None:
    class Own(TmService):
        def has_transaction(self, ctx: Any) -> bool:
            return True

    core, _ = offline_core(("tm", kemi_tm))
    tm: Any = core.services["tm"]
    own = Own(core, tm.settings, tm.stats)
    assert "has_transaction" not in vars(own) and own.has_transaction(None) is True
