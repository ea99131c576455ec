"""Plugins use kemi's public namespaces only: ``kemi_core.api`` and ``kemi_core.sip`` (and, in
their tests and test harnesses, ``kemi_core.testing``). Anything else under ``kemi_core`` is
internal and may change without notice, so a plugin importing it would break silently.

Every exception is listed below with its reason; a new one needs a reason too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kemi_core.api
import kemi_core.sip
import kemi_core.testing

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = {"kemi_core.api", "kemi_core.sip"}
PUBLIC_FOR_TESTS = PUBLIC | {"kemi_core.testing"}

#: (distribution folder, internal module) -> why the plugin may import it.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("kemi_ctl", "kemi_core.rpc.server"):
        "ctl configures the core's own control socket: it checks the address with the server's "
        "parser, so the module and the server can never disagree on what an address is",
}


def _distributions() -> list[Path]:
    dists = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
    for folder in ("plugins", "third_party"):
        dists += sorted(p for p in (ROOT / "tests" / folder).iterdir()
                        if (p / "pyproject.toml").exists())
    return dists


def _is_test_code(path: Path, dist: Path) -> bool:
    rel = path.relative_to(dist).parts
    return "tests" in rel or path.name in ("conftest.py", "testing.py") or path.name.startswith("bench_")


def _is_core(name: str) -> bool:
    return name == "kemi_core" or name.startswith("kemi_core.")  # not kemi_corex & co


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import of a kemi_core module, including importorskip("...")."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "kemi_core":
                found += [(node.lineno, f"kemi_core.{a.name}") for a in node.names]
            elif node.module.startswith("kemi_core."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _is_core(a.name)]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and _is_core(node.args[0].value)
              and getattr(node.func, "attr", getattr(node.func, "id", "")) in
              ("importorskip", "import_module", "__import__")):
            found.append((node.lineno, node.args[0].value))
    return sorted(found)


def test_plugins_import_only_the_public_namespaces() -> None:
    bad: list[str] = []
    used_exceptions: set[tuple[str, str]] = set()
    checked = 0
    for dist in _distributions():
        for path in sorted(dist.rglob("*.py")):
            if any(part in ("build", ".venv", ".eggs") for part in path.parts):
                continue
            checked += 1
            allowed = PUBLIC_FOR_TESTS if _is_test_code(path, dist) else PUBLIC
            for line, module in _imported_modules(ast.parse(path.read_text(), str(path))):
                if module in allowed:
                    continue
                key = (dist.name, module)
                if key in EXCEPTIONS:
                    used_exceptions.add(key)
                    continue
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports internal {module}")
    assert checked > 50
    assert not bad, "plugins must import from kemi_core.api / kemi_core.sip only:\n" + "\n".join(bad)
    assert used_exceptions == set(EXCEPTIONS), (
        f"stale exceptions, remove them: {sorted(set(EXCEPTIONS) - used_exceptions)}")


def test_the_finder_sees_every_import_form(tmp_path: Path) -> None:
    src = ("from kemi_core import hookimpl\nimport kemi_core.runtime.core\nimport kemi_corex\n"
           "from kemi_core.engine import Engine\nx = pytest.importorskip('kemi_core.pv')\n"
           "from kemi_core.api import Core\nfrom . import sibling\n")
    assert [m for _, m in _imported_modules(ast.parse(src))] == [
        "kemi_core.hookimpl", "kemi_core.runtime.core", "kemi_core.engine", "kemi_core.pv",
        "kemi_core.api"]


def test_every_public_name_exists_and_is_documented() -> None:
    for module in (kemi_core.api, kemi_core.sip, kemi_core.testing):
        assert module.__doc__
        assert sorted(module.__all__) == sorted(set(module.__all__)), module.__name__
        for name in module.__all__:
            obj = getattr(module, name)  # AttributeError: listed but missing
            if callable(obj) and not isinstance(obj, int):
                assert getattr(obj, "__doc__", None), f"{module.__name__}.{name} has no docstring"
