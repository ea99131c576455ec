"""Transaction matching keys (RFC 3261 17.1.3, 17.2.3)."""

from __future__ import annotations

from kemi_tm.keys import cancel_target_key, client_key, is_rfc3261_branch, reply_key, server_key


def test_cookie():
    assert is_rfc3261_branch("z9hG4bK776asdhds")
    assert not is_rfc3261_branch("776asdhds") and not is_rfc3261_branch(None)


def test_rfc3261_invite_retransmission_and_ack_match(sip):
    inv = sip.request("INVITE")
    assert server_key(inv) == server_key(sip.request("INVITE"))
    ack = sip.request("ACK", to_tag="uas1")  # ACK for a non-2xx keeps the INVITE's branch
    assert server_key(ack) == server_key(inv)


def test_rfc3261_sent_by_and_branch_and_method_matter(sip):
    inv = sip.request("INVITE")
    assert server_key(sip.request("INVITE", sent_by="10.0.0.9:5060")) != server_key(inv)
    assert server_key(sip.request("INVITE", branch="z9hG4bKother")) != server_key(inv)
    assert server_key(sip.request("BYE")) != server_key(inv)
    # the default port is the same sent-by as no port
    assert server_key(sip.request("INVITE", sent_by="10.0.0.1")) == server_key(inv)


def test_rfc3261_a_reused_branch_with_another_call_id_or_cseq_is_a_new_request(sip):
    """Kamailio's matching (its transactions are found by Call-ID and CSeq number first): a
    client reusing a branch for a new request gets a new transaction, not the old reply."""
    inv = sip.request("INVITE")
    assert server_key(sip.request("INVITE", call_id="other@10.0.0.1")) != server_key(inv)
    assert server_key(sip.request("INVITE", cseq=2)) != server_key(inv)
    cancel = sip.request("CANCEL", cseq=2)
    assert cancel_target_key(cancel) != server_key(inv)


def test_cancel_is_its_own_transaction_but_finds_its_invite(sip):
    inv = sip.request("INVITE")
    cancel = sip.request("CANCEL")
    assert server_key(cancel) != server_key(inv)
    assert cancel_target_key(cancel) == server_key(inv)


def test_rfc2543_fallback(sip):
    inv = sip.request("INVITE", branch="")
    assert server_key(inv)[0] == "2543"
    assert server_key(sip.request("INVITE", branch="")) == server_key(inv)
    ack = sip.request("ACK", branch="", to_tag="uas1")
    assert server_key(ack) == server_key(inv)
    assert cancel_target_key(sip.request("CANCEL", branch="")) == server_key(inv)
    assert server_key(sip.request("INVITE", branch="", cseq=2)) != server_key(inv)
    assert server_key(sip.request("INVITE", branch="", call_id="other")) != server_key(inv)
    assert server_key(sip.request("INVITE", branch="", ruri="sip:carol@example.com")) != \
        server_key(inv)
    # an old-style branch without the cookie is matched the RFC 2543 way as well
    assert server_key(sip.request("INVITE", branch="oldstyle1"))[0] == "2543"


def test_reply_key_matches_client_key(sip):
    req = sip.request("INVITE", branch="z9hG4bKp.0")
    ok = sip.reply(req, 200, "OK")
    assert reply_key(ok) == client_key("z9hG4bKp.0", "INVITE")
    cancel_ok = sip.reply(sip.request("CANCEL", branch="z9hG4bKp.0"), 200, "OK")
    assert reply_key(cancel_ok) == client_key("z9hG4bKp.0", "CANCEL") != reply_key(ok)
