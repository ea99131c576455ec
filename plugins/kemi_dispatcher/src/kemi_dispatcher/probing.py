"""Which destinations the keepalives go to, and what an answer (or its absence) does to a
destination's state: Kamailio 5.6's rules, as observed running it.

``ds_probing_mode``: 0 probes the destinations marked probing (P), once: the mark is cleared by
the answer; 1 probes every destination (the disabled ones and those flagged "no ping" aside) and
keeps them marked P; 2 probes the inactive ones marked P; 3 probes those marked P without ever
clearing the mark. A keepalive answered with 200 (or a code of ``ds_ping_reply_codes``) counts
as a success; any other final reply, or none before tm's ``fr_timer`` (a local 408), as a failure.
``ds_probing_threshold`` failures make a destination inactive (trying before that),
``ds_inactive_threshold`` successes make an inactive one active again.
"""

from __future__ import annotations

from collections.abc import Iterator

from kemi_dispatcher.destinations import DISABLED, INACTIVE, NOPING, PROBING, TRYING, Dest, DsList
from kemi_dispatcher.state import SetState


def wanted(flags: int, dest: Dest, mode: int) -> bool:
    """Whether a destination gets a keepalive this round."""
    if flags & DISABLED or dest.flags & NOPING:
        return False
    if mode == 1:
        return True
    if mode == 2:
        return bool(flags & INACTIVE and flags & PROBING)
    return bool(flags & PROBING)


def targets(dslist: DsList, states: dict[int, SetState], mode: int
            ) -> Iterator[tuple[int, int, Dest]]:
    """(set id, index, destination) of each destination to probe now."""
    for dset in dslist:
        st = states.get(dset.setid)
        if st is None:
            continue
        for i, d in enumerate(dset.dests):
            if i < len(st.flags) and wanted(st.flags[i], d, mode):
                yield dset.setid, i, d


def accepted(status: int, codes: tuple[tuple[str, int], ...]) -> bool:
    if status == 200:
        return True
    return any(kind == "code" and status == n or kind == "class" and status // 100 == n
               for kind, n in codes)


def after_probe(st: SetState, i: int, ok: bool, mode: int, probing_threshold: int,
                inactive_threshold: int) -> SetState:
    """The set's state once destination ``i`` answered (``ok``) or failed a keepalive."""
    flags = st.flags[i]
    if flags & DISABLED:
        return st
    if ok:
        oks, fails = st.oks[i] + 1, 0
        if flags & (INACTIVE | TRYING):
            if oks >= inactive_threshold:
                flags &= ~(INACTIVE | TRYING)
                oks = 0
        else:
            oks = 0
    else:
        oks, fails = 0, st.fails[i] + 1
        if fails >= probing_threshold:
            flags = (flags & ~TRYING) | INACTIVE
        elif not flags & INACTIVE:
            flags |= TRYING
    if mode == 0:
        flags &= ~PROBING
    elif mode == 1:
        flags |= PROBING
    return st.with_dest(i, flags=flags, fails=fails, oks=oks)
