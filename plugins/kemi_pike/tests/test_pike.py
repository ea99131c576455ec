"""pike: the window counting (sans-IO) and a real server with two workers counting together."""

from __future__ import annotations

from pathlib import Path

from kemi_auth.testing import DigestUA
from kemi_core.testing import KemiProcess, free_port
from kemi_pike import count


def test_windows_and_hot_state() -> None:
    hit = None
    for _ in range(16):
        hit = count(hit, 100, 16)
    assert hit == (100, 0, 16, False)  # 16 requests in a window are allowed
    hit = count(hit, 100, 16)
    assert hit == (100, 0, 17, True)  # the 17th is a flood
    hit = count(hit, 101, 16)
    assert hit == (101, 17, 1, True)  # the previous window still counts
    hit = count(hit, 102, 16)
    assert hit == (102, 1, 1, False)  # one quiet window later it is over
    assert count(hit, 110, 16) == (110, 0, 1, False)  # a long silence forgets everything


CFG = """#!KAMAILIO
listen=udp:127.0.0.1:{port}
children=2
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "pike.so"
modparam("pike", "sampling_time_unit", 2)
modparam("pike", "reqs_density_per_unit", 16)
modparam("pike", "remove_latency", 4)
request_route {{
    pike_check_req();
    $var(rc) = $rc;
    append_to_reply("X-RC: $var(rc)\\r\\nX-Pid: $pp\\r\\n");
    sl_send_reply("200", "OK");
}}
"""


def test_flood_detected_across_workers(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CFG.format(port=port))
    with KemiProcess(cfg, tmp_path) as proc:
        codes, pids = [], set()
        for _ in range(40):  # a new socket each time: the kernel spreads them over the workers
            with DigestUA(port, src="127.0.0.5") as ua:
                reply = ua.request("OPTIONS")
                assert reply is not None
                codes.append(reply.header("X-RC"))
                pids.add(reply.header("X-Pid"))
        assert len(pids) == 2
        # at most 16 per window pass; a window boundary in the burst can only delay detection
        assert codes[:16] == ["1"] * 16
        first = codes.index("-2")
        assert first <= 33 and set(codes[first + 1:]) <= {"-1", "-2"}
        with DigestUA(port, src="127.0.0.6") as other:  # another address is served
            assert other.request("OPTIONS").header("X-RC") == "1"  # type: ignore[union-attr]
        top = proc.rpc("pike.top")
        assert [r["ip_addr"] for r in top["list"]] == ["127.0.0.5"]
        assert top["list"][0]["status"] == "HOT" and top["max_hits"] == 16
        assert {r["ip_addr"] for r in proc.rpc("pike.top", "ALL")["list"]} == {
            "127.0.0.5", "127.0.0.6"}
        assert "PIKE - BLOCKing ip 127.0.0.5" in proc.log()
