"""tm's RPC commands. They run in the main process, which sees the shared counters (every
worker writes its row) but not the workers' transaction tables (each worker holds its own)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kemi_tm.uac import MainProcessUac

if TYPE_CHECKING:
    from kemi_core.api import Core
    from kemi_tm.service import TmService


def register(core: Core, svc: TmService) -> None:
    main_uac = MainProcessUac(svc)
    # the replies to its requests: handed over by tm's own miss path in the workers
    core.add_main_reply_handler(main_uac.on_reply, first=False)
    core.add_rpc("tm.stats", lambda c, p: stats(svc, c, p),
                 "Transactions created/freed/current and final replies by class, all workers.")
    core.add_rpc("tm.list", lambda c, p: list_transactions(svc, c, p),
                 "Current transactions: listed when this process holds them (fork=no), else "
                 "per-worker counts only (worker tables are private to each worker).")
    core.add_rpc("tm.t_uac_start", lambda c, p: uac_start(main_uac, c, p),
                 "Send a request statefully: method ruri [nexthop [socket [headers [body]]]].")


def stats(svc: TmService, core: Core, params: list[Any]) -> dict[str, Any]:
    return dict(svc.stats.totals())


def list_transactions(svc: TmService, core: Core, params: list[Any]) -> dict[str, Any]:
    local = []
    for tx in svc.table.transactions():
        req = tx.request
        local.append({"method": tx.method, "ruri": req.ruri, "call_id": req.call_id,
                      "cseq": req.cseq.number, "branches": len(tx.branches),
                      "pending": tx.pending_branches, "status": tx.final_status,
                      "canceled": tx.canceled})
    per_worker = {str(rank): row["uas"] - row["freed"]
                  for rank, row in sorted(svc.stats.by_rank().items()) if row["uas"]}
    out: dict[str, Any] = {"transactions": local, "current_per_worker": per_worker}
    if core.transport is None:
        out["note"] = ("transactions live in the worker processes; this process lists only "
                       "the counts each worker publishes")
    return out


def uac_start(main_uac: MainProcessUac, core: Core, params: list[Any]) -> dict[str, Any]:
    if len(params) < 2:
        raise ValueError("tm.t_uac_start: method and ruri are required")
    method, ruri = str(params[0]), str(params[1])
    nexthop = str(params[2]) if len(params) > 2 and params[2] not in (None, ".") else ""
    socket = str(params[3]) if len(params) > 3 and params[3] not in (None, ".") else ""
    headers = str(params[4]) if len(params) > 4 and params[4] not in (None, ".") else ""
    body = str(params[5]) if len(params) > 5 and params[5] not in (None, ".") else ""
    return main_uac.start(core, method, ruri, nexthop, socket, headers, body)
