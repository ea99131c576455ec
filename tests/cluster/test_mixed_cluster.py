"""The migration path: a Kamailio 5.6 proxy and a kemi proxy share one PostgreSQL location table
(usrloc db_mode 3, the same config and Lua script), both ways: a user registered through one is
called through the other; unregistered through one, the other answers 404."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kemi_core.testing import free_port
from kemi_core.testing.cluster import kamailio_cluster_available, location_database
from kemi_core.testing.sipp import SippUas, run_sipp

SCENARIOS = Path(__file__).parent / "scenarios"
REASON = kamailio_cluster_available()

pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


def sipp(target: Any, workdir: Path, scenario: str, name: str, **keys: str) -> Any:
    extra = ["-s", "carol"]
    for k, v in keys.items():
        extra += ["-key", k, v]
    return run_sipp(target.address, workdir, scenario=SCENARIOS / scenario, calls=1,
                    extra=extra, name=name)


@pytest.mark.parametrize("registrar", ["kamailio", "kemi"])
def test_register_on_one_engine_call_through_the_other(registrar: str, make_node: Any,
                                                       postgres_server: Any,
                                                       tmp_path: Path) -> None:
    other = "kemi" if registrar == "kamailio" else "kamailio"
    url = location_database(postgres_server)
    reg = make_node("reg", registrar, "127.0.0.2", "proxy", db_url=url, server_id=1).start()
    call = make_node("call", other, "127.0.0.3", "proxy", db_url=url, server_id=2).start()
    with SippUas(tmp_path, free_port(), scenario=SCENARIOS / "uas.xml") as uas:
        contact = f"sip:carol@127.0.0.1:{uas.port}"
        res = sipp(reg, tmp_path, "register.xml", "reg", contact=contact, expires="3600")
        assert res.successful == 1, res.stdout[-2000:]
        res = sipp(call, tmp_path, "uac_call.xml", "call")
        assert res.successful == 1, f"{registrar} registered, {other} called:\n{res.stdout[-2000:]}"
        assert call.invites() >= 1
        # unregistered through the calling node, the registering node has no contact left
        res = sipp(call, tmp_path, "register.xml", "unreg", contact=contact, expires="0")
        assert res.successful == 1, res.stdout[-2000:]
        res = sipp(reg, tmp_path, "uac_404.xml", "gone")
        assert res.successful == 1, res.stdout[-2000:]
