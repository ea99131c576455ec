"""tm's module parameters (Kamailio's names and units: timers in milliseconds) and the sans-IO
settings built from them, with the script's per-transaction overrides applied."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from kemi_core.api import ModuleError
from kemi_tm.context import AUTO_INV_100_REASON, ProxySettings
from kemi_tm.state import MODULE, Overrides
from kemi_tm.timers import TimerSettings

if TYPE_CHECKING:
    from kemi_core.api import Core

#: (name, kind, default, doc) of the parameters that shape behaviour.
PARAMS: list[tuple[str, type, object, str]] = [
    ("fr_timer", int, 30000, "ms to wait for a final reply (no 1xx yet) before a local 408"),
    ("fr_inv_timer", int, 120000, "ms to wait for an INVITE final reply after a 1xx"),
    ("wt_timer", int, 5000, "ms a completed transaction lingers to absorb retransmissions"),
    ("retr_timer1", int, 500, "first retransmission interval over UDP (T1), ms"),
    ("retr_timer2", int, 4000, "retransmission interval cap (T2), ms"),
    ("max_inv_lifetime", int, 180000, "upper bound of an INVITE transaction's life, ms"),
    ("max_noninv_lifetime", int, 32000, "upper bound of a non-INVITE transaction's life, ms"),
    ("failure_reply_mode", int, 3, "0: every branch's reply competes; 3: only the last serial step's"),
    ("restart_fr_on_each_reply", int, 1, "restart fr_inv_timer on each provisional reply"),
    ("auto_inv_100", int, 1, "answer 100 to an INVITE when t_relay forwards it"),
    ("auto_inv_100_reason", str, AUTO_INV_100_REASON, "reason phrase of that 100"),
    ("faked_reply_prio", int, 0, "added to the priority of local replies (408 ...)"),
    ("disable_6xx_block", int, 0, "1: a 6xx does not stop serial forking"),
    ("on_sl_reply", str, "", "route run for replies that match no transaction (then 0 drops them)"),
    ("contacts_avp", str, "tm_contacts", "xavp name t_load_contacts stores the contacts in"),
    ("unmatched_cancel", int, 0, "a CANCEL matching no INVITE: 0 relayed statefully, 1 forwarded "
     "statelessly (t_relay then ends the script), 2 dropped"),
]

#: Kamailio parameters accepted for compatibility; they change nothing here.
ACCEPTED = [
    ("noisy_ctimer", int), ("reparse_invite", int), ("contact_flows_avp", str),
    ("via1_matching", int), ("e2e_cancel_reason", int), ("unix_tx_timeout", int),
    ("aggregate_challenges", int), ("cancel_b_method", int), ("reparse_on_dns_failover", int),
    ("blst_503", int), ("blst_503_def_timeout", int), ("blst_503_min_timeout", int),
    ("blst_503_max_timeout", int), ("blst_methods_add", int), ("blst_methods_lookup", int),
    ("pass_provisional_replies", int), ("fr_timer_avp", str), ("fr_inv_timer_avp", str),
    ("tw_append", str), ("ruri_matching", int), ("callid_matching", int),
    ("local_cancel_reason", int), ("local_ack_mode", int), ("xavp_contact", str),
    ("event_callback", str), ("event_callback_lres_mode", int), ("relay_100", int),
    ("rich_redirect", int), ("enable_stats", int), ("dns_reuse_rcv_socket", int),
    ("local_reply_route", str), ("exec_time_check", int), ("headers_mode", int),
    ("evrt_local_request", str), ("cancel_reason", int), ("wt_timer_avp", str),
    ("tm_event_callback", str), ("delete_timer", int), ("retr_timer1_avp", str),
]


def declare(core: Core) -> None:
    for name, kind, default, doc in PARAMS:
        core.declare_param(MODULE, name, kind, default, doc=doc)
    for name, kind in ACCEPTED:
        core.declare_param(MODULE, name, kind, None, doc="accepted for compatibility; no effect")


def _ms(value: int) -> float:
    return max(int(value), 0) / 1000.0


@attrs.frozen
class TmSettings:
    """The modparams as read in mod_init."""

    timers: TimerSettings
    proxy: ProxySettings
    on_sl_reply: str
    contacts_avp: str
    unmatched_cancel: int = 0

    @classmethod
    def from_core(cls, core: Core) -> TmSettings:
        p = lambda name: core.modparam(MODULE, name)  # noqa: E731
        t1, t2 = _ms(p("retr_timer1")), _ms(p("retr_timer2"))
        if t1 <= 0 or t2 < t1:
            raise ModuleError(f"tm: retr_timer1 ({p('retr_timer1')}) must be > 0 and <= retr_timer2")
        timers = TimerSettings(
            t1=t1, t2=t2, fr_timer=_ms(p("fr_timer")), fr_inv_timer=_ms(p("fr_inv_timer")),
            wt_timer=_ms(p("wt_timer")), retr_timer1=t1, retr_timer2=t2,
            max_inv_lifetime=_ms(p("max_inv_lifetime")),
            max_noninv_lifetime=_ms(p("max_noninv_lifetime")),
            restart_fr_on_each_reply=bool(p("restart_fr_on_each_reply")))
        mode = int(p("failure_reply_mode"))
        if mode not in (0, 3):
            raise ModuleError(f"tm: failure_reply_mode {mode} is not supported (0 or 3)")
        proxy = ProxySettings(
            failure_reply_mode=mode, faked_reply_prio=int(p("faked_reply_prio")),
            auto_inv_100=bool(p("auto_inv_100")), auto_inv_100_reason=str(p("auto_inv_100_reason")),
            disable_6xx_block=bool(p("disable_6xx_block")))
        unmatched = int(p("unmatched_cancel"))
        if unmatched not in (0, 1, 2):
            raise ModuleError(f"tm: unmatched_cancel must be 0, 1 or 2 (not {unmatched})")
        return cls(timers, proxy, str(p("on_sl_reply") or ""), str(p("contacts_avp") or "tm_contacts"),
                   unmatched)

    def timers_for(self, ov: Overrides) -> TimerSettings:
        """The timer settings of one transaction: the script's overrides, else the modparams."""
        t = self.timers
        changes: dict[str, Any] = {}
        if ov.fr_inv:
            changes["fr_inv_timer"] = _ms(ov.fr_inv)
        if ov.fr:
            changes["fr_timer"] = _ms(ov.fr)
        if ov.max_inv_lifetime:
            changes["max_inv_lifetime"] = _ms(ov.max_inv_lifetime)
        if ov.max_noninv_lifetime:
            changes["max_noninv_lifetime"] = _ms(ov.max_noninv_lifetime)
        if ov.retr_t1:
            changes["retr_timer1"] = changes["t1"] = _ms(ov.retr_t1)
        if ov.retr_t2:
            changes["retr_timer2"] = changes["t2"] = _ms(ov.retr_t2)
        return attrs.evolve(t, **changes) if changes else t

    def proxy_for(self, ov: Overrides) -> ProxySettings:
        changes: dict[str, Any] = {}
        if ov.auto_inv_100 is not None:
            changes["auto_inv_100"] = ov.auto_inv_100
        if ov.disable_6xx is not None:
            changes["disable_6xx_block"] = ov.disable_6xx
        return attrs.evolve(self.proxy, **changes) if changes else self.proxy
