"""TmTransaction sets every field itself (one __init__ frame): the same values as the
ServerTransaction and ProxyTransaction constructors it stands in for."""

from __future__ import annotations

import pytest

from kemi_core.api import RecvInfo
from kemi_tm.actions import Dest, Recorder
from kemi_tm.client import (
    ClientTransaction,
    InviteClientTransaction,
    NonInviteClientTransaction,
)
from kemi_tm.context import InviteBranch, NonInviteBranch, ProxySettings
from kemi_tm.proxy import ProxyTransaction
from kemi_tm.server import ServerTransaction
from kemi_tm.state import NO_OVERRIDES, Callbacks
from kemi_tm.timers import TimerSettings
from kemi_tm.transaction import TmTransaction

CALLER = Dest("udp", "10.0.0.1", 5060, ("127.0.0.1", 5060))
RCV = RecvInfo("udp", "10.0.0.1", 5060, "127.0.0.1", 5060)


def slots_of(cls: type) -> list[str]:
    return [name for klass in cls.__mro__ for name in getattr(klass, "__slots__", ())]


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS", "BYE"])
@pytest.mark.parametrize("given_key", [False, True])
def test_fields_as_the_base_constructors_set_them(sip, method, given_key):
    req = sip.request(method, branch="z9hG4bKx1")
    timers = TimerSettings(retr_timer1=0.25)
    proxy = ProxySettings(auto_inv_100=False)
    key = ("given",) if given_key else None
    tm = TmTransaction(req, CALLER, RCV, 1.0, Callbacks(), NO_OVERRIDES, settings=timers,
                       proxy_settings=proxy, key=key)
    plain = ProxyTransaction(req, CALLER, timers, proxy, key, ident=tm.ident, to_tag=tm.to_tag)
    names = slots_of(ProxyTransaction)
    assert set(slots_of(ServerTransaction)) <= set(names)
    for name in names:
        if name == "sink":
            assert type(getattr(tm, name)) is type(getattr(plain, name))
            continue
        assert getattr(tm, name) == getattr(plain, name), name
    for name in slots_of(TmTransaction):
        getattr(tm, name)  # every slot is set


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
@pytest.mark.parametrize("as_bytes", [False, True])
def test_branch_fields_as_the_client_constructor_sets_them(sip, method, as_bytes):
    req = sip.request(method, branch="z9hG4bKb.0")
    request = req.to_bytes() if as_bytes else req
    dest = Dest("udp", "10.0.0.10", 5060)
    timers = TimerSettings(retr_timer1=0.25)
    sink = Recorder()
    invite = method == "INVITE"
    branch = (InviteBranch if invite else NonInviteBranch)(
        3, 1, request, dest, timers, "z9hG4bKb.0", sink, method)
    client = (InviteClientTransaction if invite else NonInviteClientTransaction)(
        request, dest, timers, "z9hG4bKb.0", sink, method)
    for name in slots_of(ClientTransaction):
        assert getattr(branch, name) == getattr(client, name), name
    for name in slots_of(type(branch)):
        getattr(branch, name)  # every slot is set
