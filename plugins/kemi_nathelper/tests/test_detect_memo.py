"""is_private's memo answers as the address check does, per nat_addr_mode, and stays bounded."""

from __future__ import annotations

import pytest

from kemi_nathelper import detect

ADDRESSES = ["192.168.1.10", "10.1.2.3", "127.0.0.1", "192.0.0.9", "192.0.0.200", "100.64.0.1",
             "[::1]", "host.example", "172.31.255.255", "172.32.0.1", ""]


@pytest.mark.parametrize("mode", [0, 1])
def test_memo_answers_as_the_check(monkeypatch: pytest.MonkeyPatch, mode: int) -> None:
    monkeypatch.setattr(detect.settings, "nat_addr_mode", mode)
    for _ in range(2):  # the second round from the memo
        assert [detect.is_private(a) for a in ADDRESSES] == [
            detect._is_private(a) for a in ADDRESSES]
    assert detect.is_private("192.0.0.200") is (mode == 1)


def test_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(detect, "_MEMO_SIZE", 4)
    for i in range(10):
        assert detect.is_private(f"10.0.0.{i}")
    assert len(detect._PRIVATE_MEMO) <= 4


def test_nat_uac_test_chooses_the_flagged_tests() -> None:
    chosen = detect._chosen(19)
    assert [bit for bit, _ in chosen] == [1, 2, 16]
    assert detect._chosen(19) is chosen  # from the memo
    assert detect._chosen(0) == ()
    assert [bit for bit, _ in detect._chosen(1023)] == [bit for bit, _ in detect.TESTS]
