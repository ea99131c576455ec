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

#: The files that take longest (their tests' summed times in a full `make test`, longest first:
#: 45 min run of 2026-12-07 on a loaded machine). Under pytest-xdist's ``--dist loadfile`` they
#: start first, so the two workers end together instead of one running a long file alone at the
#: end; a stale entry only costs balance. Every other file keeps its collection order.
LONG_FILES = (
    "tests/e2e/test_basic_example_auth.py",
    "plugins/kemi_tm/tests/test_tm_glue_soak.py",
    "tests/integration/test_kemi_new.py",
    "tests/e2e/test_basic_example_nat.py",
    "tests/e2e/test_basic_example_vs_kamailio.py",
    "plugins/kemi_acc/tests/test_acc_db_vs_kamailio.py",
    "tests/sip/test_sip_fast_ext.py",
    "tests/sip/test_sip_fuzz.py",
    "tests/e2e/test_jsdt_stubs_cli.py",
    "tests/db/test_db_outage.py",
    "plugins/kemi_auth_db/tests/test_auth_db_backends.py",
    "tests/e2e/test_watchdog.py",
    "tests/cluster/test_cluster_flows.py",
)


def pytest_configure(config: pytest.Config) -> None:
    # xdist hands out whole files by their number of tests, most first, unless told not to:
    # the long files with few tests (soak, examples side by side) then started last
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """LONG_FILES' tests first (a stable sort: each file's tests stay in their order)."""
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


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
