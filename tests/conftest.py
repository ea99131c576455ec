"""Suite-wide fixtures.

``test_plugins`` makes the test-only plugin distributions of tests/plugins/ (a module and an
engine that need nothing from kemi but an entry point) visible to this test run only: they are
never installed into the environment, so ``kemi modules``, ``kemi docs`` and the stubs of a
developer's .venv show real modules only.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

TEST_PLUGINS = Path(__file__).resolve().parent / "plugins"


def write_dist_info(project: Path, site: Path) -> Path:
    """What ``pip install`` would leave of ``project`` for importlib.metadata: a .dist-info
    with its name, version and entry points (read from its pyproject.toml), in ``site``."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    name, version = meta["name"], meta["version"]
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    groups = meta.get("entry-points", {})
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
        for group, eps in groups.items()))
    return info


@pytest.fixture(scope="session")
def test_plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Puts every distribution of tests/plugins/ on sys.path (for this process) and on
    PYTHONPATH (for the kemi processes tests start); yields the paths added."""
    site = tmp_path_factory.mktemp("test-plugins-site")
    paths = [str(site)]
    for project in sorted(p for p in TEST_PLUGINS.iterdir() if (p / "pyproject.toml").exists()):
        write_dist_info(project, site)
        paths.append(str(project / "src"))
    old_env = os.environ.get("PYTHONPATH")
    sys.path[:0] = paths
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + ([old_env] if old_env else []))
    yield paths
    for path in paths:
        sys.path.remove(path)
    if old_env is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old_env
