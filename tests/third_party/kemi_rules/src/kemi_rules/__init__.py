"""app_rules: a third-party config engine ("rules") written from kemi's public API only.

The script is JSON: ``{"request": [rule, ...]}``; a rule is ``{"user": "alice", "calls":
[["module", "function", arg, ...], ...]}`` (``user`` optional: it matches the R-URI user). The
first matching rule runs its calls, KEMI functions found with ``core.registry.lookup``.
Reload is the core's (``kemi rpc cfgengine.reload``): nothing here but ``load()``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kemi_core.api import REQUEST_ROUTE, Core, EngineSpec, MsgContext, ScriptError, hookimpl

MODULE = "app_rules"

Call = tuple[Callable[..., Any], list[Any]]


class RulesEngine:
    name = "rules"

    def __init__(self, core: Core) -> None:
        self.core = core
        self.rules: list[tuple[str | None, list[Call]]] = []

    def load(self) -> None:
        path = str(self.core.modparam(MODULE, "script"))
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except OSError as exc:
            raise ScriptError(f"{path}: {exc.strerror}")
        except json.JSONDecodeError as exc:
            raise ScriptError(f"{path}:{exc.lineno}: {exc.msg}")
        rules = []
        for rule in data.get("request", []):
            calls: list[Call] = []
            for module, function, *args in rule["calls"]:
                exp = self.core.registry.lookup(module, function)
                if exp is None:
                    raise ScriptError(f"{path}: no KEMI function {module}.{function}")
                calls.append((exp.func, args))
            rules.append((rule.get("user"), calls))
        self.rules = rules

    def has_route(self, name: str) -> bool:
        return name == REQUEST_ROUTE

    def run(self, name: str, ctx: MsgContext) -> Any:
        if name != REQUEST_ROUTE:
            raise ScriptError(f"rules: no route {name}")
        user = ctx.msg.uri.user
        for wanted, calls in self.rules:
            if wanted is None or wanted == user:
                result: Any = 1
                for func, args in calls:
                    result = func(ctx, *args)
                return result
        return 1

    def reload(self) -> None:
        self.load()


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "script", str, "", doc="the JSON rules file")


@hookimpl
def sr_kemi_eng_register() -> list[EngineSpec]:
    return [EngineSpec("rules", RulesEngine, "JSON rules calling KEMI functions")]
