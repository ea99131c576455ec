"""The worker board's stop mark: the main process marks the server stopping before it signals
the workers, and a stopping worker asks which others still route new requests (starting or
ready, not yet draining) before it leaves its shared listen sockets (Worker._check_drained)."""

from __future__ import annotations

from kemi_core.runtime.board import DRAINING, READY, STARTING, WorkerBoard


def test_not_stopping_until_the_main_process_marks_it() -> None:
    board = WorkerBoard(2)
    assert not board.stopping()
    board.mark_stopping()
    assert board.stopping()


def test_still_routing_lists_the_other_workers_not_yet_draining() -> None:
    board = WorkerBoard(3)
    for rank in (1, 2, 3):
        board.start(rank, 1000 + rank)  # starting
    assert board.still_routing(1) == [2, 3]
    board.set_state(1, DRAINING)
    board.set_state(2, READY)
    board.set_state(3, DRAINING)
    assert board.still_routing(1) == [2]
    assert board.still_routing(2) == []  # itself never counts
    board.set_state(2, DRAINING)
    assert board.still_routing(1) == []
    board.clear(3)  # gone: down
    board.set_state(1, STARTING)
    assert board.still_routing(2) == [1]


def test_the_stop_mark_is_not_a_worker_slot_and_survives_restarts() -> None:
    board = WorkerBoard(2)
    board.mark_stopping()
    board.start(1, 4242)  # a worker taking its slot clears only that slot
    board.clear(2)
    board.bump_log_generation()
    assert board.stopping()
    assert board.still_routing(2) == [1]
