"""``kemi new module NAME`` / ``kemi new engine NAME``: a ready plugin distribution.

What is written: ``kemi-NAME/`` with a pyproject.toml naming the entry point, the package under
``src/`` (one KEMI export with a parameter, a counter and an RPC command, or a minimal engine),
a README and a test that loads the plugin through its real entry point. ``pip install -e
kemi-NAME`` works at once and its tests pass.
"""

from __future__ import annotations

import re
from pathlib import Path

from kemi_core.errors import KemiError

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "kemi-{dist}"
version = "0.1.0"
description = "{what} for kemi"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["kemi-core"]

[project.optional-dependencies]
test = ["pytest>=8"]

# loadmodule "{module}.so" finds the plugin by this entry point.
[project.entry-points."kemi.modules"]
{module} = "{package}"

[tool.setuptools.packages.find]
where = ["src"]
"""

MODULE_CODE = '''\
"""{module}: a kemi module (``loadmodule "{module}.so"``).

``KSR.{module}.greet(name)`` adds ``X-{title}: <greeting> <name>`` to the message and counts the
call; ``modparam("{module}", "greeting", "...")`` sets the greeting; ``kemi rpc {module}.calls``
answers how many calls every worker made together.
"""

from __future__ import annotations

from typing import Any

from kemi_core.api import Core, KemiExport, MsgContext, export, hookimpl

MODULE = "{module}"


@hookimpl
def mod_register(core: Core) -> None:
    """Main process, at loadmodule: parameters, counters, RPC commands."""
    core.declare_param(MODULE, "greeting", str, "Hello", doc="the first word greet() writes")
    core.counter(MODULE, "calls", "calls of KSR.{module}.greet")
    core.add_rpc(f"{{MODULE}}.calls", rpc_calls, "How many times greet ran, in all workers.")


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    """The functions scripts call as KSR.{module}.<name>."""
    return [export(MODULE, "greet", greet)]


def greet(ctx: MsgContext, name: str) -> int:
    """Add ``X-{title}: <greeting> <name>`` to the message; 1 (success)."""
    greeting = ctx.core.modparam(MODULE, "greeting")
    ctx.msg.append_header("X-{title}", f"{{greeting}} {{name}}")
    ctx.core.counter(MODULE, "calls").inc()
    return 1


def rpc_calls(core: Core, params: list[Any]) -> int:
    """Runs in the main process: the counter is the sum over every worker."""
    return core.counter(MODULE, "calls").value
'''

MODULE_TEST = '''\
"""{module}: loaded through its real entry point, its export run on a real SIP request."""

from __future__ import annotations

from kemi_core.testing import context, installed_modules, offline_core, request


def test_greet_adds_the_header_and_counts() -> None:
    entry = installed_modules()["{module}"]  # the entry point pip installed
    assert entry.dist == "kemi-{dist}"
    core, _ = offline_core(("{module}", entry.load()), params={{("{module}", "greeting"): "Hi"}})
    ctx = context(core, request("OPTIONS", "sip:bob@127.0.0.1", 5070))
    greet = core.registry.lookup("{module}", "greet")
    assert greet is not None and greet.func(ctx, "world") == 1
    assert ctx.msg.header("X-{title}") == "Hi world"
    assert core.call_rpc("{module}.calls") == 1
'''

ENGINE_CODE = '''\
"""{module}: a kemi config engine "{engine}" (``loadmodule "{module}.so"``, ``cfgengine "{engine}"``).

The script (``modparam("{module}", "script", "/path/rules.txt")``) has one rule per line,
``METHOD CODE REASON``; ``*`` matches any method; ``#`` starts a comment. Each request gets the
reply of the first rule that matches (ACK gets none). Reload: ``kemi rpc cfgengine.reload``
(the core checks the new script with ``load()`` and switches every worker).
"""

from __future__ import annotations

from kemi_core.api import REQUEST_ROUTE, Core, EngineSpec, MsgContext, ScriptError, hookimpl
from kemi_core.sip import build_reply

MODULE = "{module}"


class {cls}Engine:
    """One loaded script in one process (the kemi_core.api.Engine protocol)."""

    name = "{engine}"

    def __init__(self, core: Core) -> None:
        self.core = core
        self.rules: list[tuple[str, int, str]] = []

    def load(self) -> None:
        """Read and check the script; ScriptError with file:line for a bad line."""
        path = self.core.resolve_path(str(self.core.modparam(MODULE, "script")))
        try:
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            raise ScriptError(f"{{path}}: {{exc.strerror}}")
        rules = []
        for number, line in enumerate(lines, 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            parts = text.split(None, 2)
            if len(parts) < 2 or not parts[1].isdigit() or not 100 <= int(parts[1]) <= 699:
                raise ScriptError(f"{{path}}:{{number}}: expected METHOD CODE REASON, got {{text!r}}")
            rules.append((parts[0].upper(), int(parts[1]), parts[2] if len(parts) > 2 else ""))
        self.rules = rules

    def has_route(self, name: str) -> bool:
        return name == REQUEST_ROUTE

    def run(self, name: str, ctx: MsgContext) -> int:
        if name != REQUEST_ROUTE:
            raise ScriptError(f"{engine}: the script has no route {{name}}")
        method = ctx.msg.method
        if method == "ACK":
            return 1
        for wanted, code, reason in self.rules:
            if wanted in ("*", method):
                ctx.core.send_reply(ctx, build_reply(ctx.msg, code, reason))
                return 1
        return -1

    def reload(self) -> None:
        self.load()


@hookimpl
def mod_register(core: Core) -> None:
    core.declare_param(MODULE, "script", str, "", doc="the rules file")


@hookimpl
def sr_kemi_eng_register() -> list[EngineSpec]:
    return [EngineSpec("{engine}", {cls}Engine, "replies by METHOD CODE REASON rules")]
'''

ENGINE_TEST = '''\
"""{module}: loaded through its real entry point, a request routed by the real dispatcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemi_core.api import RecvInfo, ScriptError
from kemi_core.testing import attach_dispatcher, installed_modules, offline_core, request


def _core(script: Path):  # type: ignore[no-untyped-def]
    entry = installed_modules()["{module}"]  # the entry point pip installed
    assert entry.dist == "kemi-{dist}"
    return offline_core(("{module}", entry.load()), params={{("{module}", "script"): str(script)}})


def test_the_engine_answers_by_its_rules(tmp_path: Path) -> None:
    script = tmp_path / "rules.txt"
    script.write_text("OPTIONS 200 Alive\\n* 404 Not Here\\n")
    core, transport = _core(script)
    core.use_engine(core.engine_specs["{engine}"])  # as the server does: loaded and checked
    dispatcher = attach_dispatcher(core)
    rcv = RecvInfo("udp", "127.0.0.1", 5070, "127.0.0.1", 5060)
    for method in ("OPTIONS", "INVITE"):
        dispatcher.on_data(request(method, "sip:bob@127.0.0.1", 5070), rcv)
    assert [(s.msg.status, s.msg.reason) for s in transport.sent] == [(200, "Alive"), (404, "Not Here")]


def test_a_broken_script_is_refused_with_its_line(tmp_path: Path) -> None:
    script = tmp_path / "rules.txt"
    script.write_text("OPTIONS 200 OK\\nINVITE nope\\n")
    core, _ = _core(script)
    with pytest.raises(ScriptError, match=r"rules.txt:2: expected METHOD CODE REASON"):
        core.use_engine(core.engine_specs["{engine}"])
'''

README = """\
# kemi-{dist}

{what} for [kemi](https://pypi.org/project/kemi-core/), written from `kemi_core.api`.

```sh
pip install -e .            # then: loadmodule "{module}.so" in kamailio.cfg
pip install -e '.[test]' && pytest
```

{usage}
"""

MODULE_USAGE = """\
```
loadmodule "{module}.so"
modparam("{module}", "greeting", "Hi")
```

Scripts call `KSR.{module}.greet("world")`; `kemi rpc {module}.calls` tells how many calls all
workers made."""

ENGINE_USAGE = """\
```
loadmodule "{module}.so"
modparam("{module}", "script", "/etc/kemi/rules.txt")
cfgengine "{engine}"
```

`rules.txt` has one `METHOD CODE REASON` rule per line (`*` for any method); change it and run
`kemi rpc cfgengine.reload`: every worker switches, a broken file is refused with its line."""


def new_distribution(kind: str, name: str, parent: Path) -> Path:
    """Write ``parent/kemi-<name>`` for a ``module`` or an ``engine`` called ``name``; returns
    the folder. KemiError for a bad name or an existing folder."""
    if kind not in ("module", "engine"):
        raise KemiError(f"kemi new: {kind!r} is neither module nor engine")
    if not _NAME.match(name):
        raise KemiError(f"kemi new: {name!r} is no module name (lower-case letters, digits, _)")
    dist = name.replace("_", "-")
    root = parent / f"kemi-{dist}"
    if root.exists():
        raise KemiError(f"kemi new: {root} exists already")
    module = name if kind == "module" else f"app_{name}"
    package = f"kemi_{name}"
    fields = {"module": module, "engine": name, "dist": dist, "package": package,
              "title": name.replace("_", "-").title(),
              "cls": "".join(p.title() for p in name.split("_")),
              "what": f"The {module} module" if kind == "module" else f"The {name} config engine"}
    code, test, usage = ((MODULE_CODE, MODULE_TEST, MODULE_USAGE) if kind == "module"
                         else (ENGINE_CODE, ENGINE_TEST, ENGINE_USAGE))
    files = {
        "pyproject.toml": PYPROJECT.format(**fields),
        "README.md": README.format(usage=usage.format(**fields), **fields),
        f"src/{package}/__init__.py": code.format(**fields),
        f"tests/test_{name}.py": test.format(**fields),
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
