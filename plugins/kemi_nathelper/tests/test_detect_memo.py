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


CONTACTS = ["<sip:a@192.168.1.10:5061>", "sip:a@10.0.0.1;expires=60", "<sip:a@203.0.113.9>",
            '"A, B" <sip:a@192.0.0.200>', "*", "<sip:a@[::1]>", "<tel:+123>", "<sip:a@h", "",
            "<sip:a@192.168.1.10>, <<bad"]


@pytest.mark.parametrize("mode", [0, 1])
def test_contact_memo_answers_as_the_parse(monkeypatch: pytest.MonkeyPatch, mode: int) -> None:
    """The first Contact's host private, from the memo for a message with one Contact line;
    several lines (or none) are parsed each time."""
    import kemi_nathelper
    from kemi_core.api import MsgContext
    from kemi_core.testing import context, offline_core

    core, _ = offline_core(("nathelper", kemi_nathelper))
    monkeypatch.setattr(detect.settings, "nat_addr_mode", mode)
    detect._CONTACT_MEMO.clear()

    def ctx(*contacts: str) -> MsgContext:
        lines = "".join(f"Contact: {c}\r\n" for c in contacts)
        return context(core, "INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
                       "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\n"
                       f"CSeq: 1 INVITE\r\n{lines}Content-Length: 0\r\n\r\n")

    for _ in range(2):  # the second round from the memo
        for value in CONTACTS:
            assert detect._contact_private(ctx(value)) == detect._contact_uri_private(ctx(value))
        for pair in (CONTACTS[:2], CONTACTS[2:4], [CONTACTS[0], CONTACTS[-3]], []):
            c = ctx(*pair)
            assert detect._contact_private(c) == detect._contact_uri_private(c)
    assert detect._contact_private(ctx(CONTACTS[0])) is True
    assert detect._contact_private(ctx("<sip:a@192.0.0.200>")) is (mode == 1)
