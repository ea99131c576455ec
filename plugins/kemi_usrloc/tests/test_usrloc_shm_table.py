"""usrloc's records in the store's C shared-memory table: where they live, what the timer
reads, and a full table answered as a full store is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kemi_core.api import ShmTable
from kemi_registrar.state import held
from kemi_usrloc.domain import MemDomain

pytestmark = pytest.mark.skipif(not ShmTable.built, reason="_shmtable not built")

CFG = """#!KAMAILIO
listen=udp:127.0.0.1:5060
loadmodule "sl.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "timer_interval", 1000000)
request_route {
    if (!save("location")) {
        sl_reply_error();
    }
    exit;
}
"""


def _register(n: int, expires: int = 3600) -> str:
    return "\r\n".join([
        "REGISTER sip:127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-{n};rport",
        f"From: <sip:u{n}@127.0.0.1>;tag={n}", f"To: <sip:u{n}@127.0.0.1>",
        f"Call-ID: c{n}", "CSeq: 1 REGISTER", "Max-Forwards: 70",
        f"Contact: <sip:u{n}@127.0.0.1:5070>", f"Expires: {expires}"]) + "\r\n\r\n"


def _router(kemi_router: Any, tmp_path: Path) -> Any:
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG)
    return kemi_router(cfg, fail_on_script_error=False)


def _location() -> MemDomain:
    st = held.current
    assert st is not None
    dom = st.ul.domains["location"]
    assert isinstance(dom, MemDomain)
    return dom


def test_records_live_in_the_c_table_and_the_timer_reads_only_due_ones(
        kemi_router: Any, tmp_path: Path) -> None:
    router = _router(kemi_router, tmp_path)
    for n, expires in enumerate((60, 3600, 3600)):
        assert router.request(_register(n, expires)).final.status == 200
    dom = _location()
    assert dom.in_shm and isinstance(dom.table, ShmTable)
    now = router.core.clock.wall()
    assert dom.table.due(now) == []  # (nothing expired: no record read)
    assert [k for k, _ in dom.table.due(now + 61)] == ["u0"]
    router.advance(61)
    dom.collect(router.core.clock.wall())
    assert [aor for aor, _ in dom.records()] == ["u1", "u2"]


def test_a_full_table_is_answered_500_with_the_reason_logged(
        kemi_router: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEMI_SHARED_SIZE_MB", "1")
    router = _router(kemi_router, tmp_path)
    for n in range(20_000):
        out = router.request(_register(n))
        if out.final.status != 200:
            break
    assert n > 1000 and out.final.status == 500
    assert any("SharedStoreFull" in e and "KEMI_SHARED_SIZE_MB" in e for e in out.errors)
    assert _location().get(f"u{n}") == [] and _location().get("u0") != []
