"""kemi_tm: Kamailio's tm module (stateful SIP transactions) for kemi.

The sans-IO transaction layer lives in ``timers``, ``keys``, ``actions``, ``client``,
``server``, ``proxy`` and ``table``. The KEMI glue, each part calling only those below it:
``exports`` (KSR.tm.*) -> ``relay`` (t_relay and the request side: branches, ACK, CANCEL) ->
``service`` (the transactions' lifecycle: made, replies in, timers, stateful replies, the
decision when every branch failed) -> ``callbacks`` (the script's branch, onreply, failure and
branch-failure routes) -> ``transaction`` (a transaction with the script's state) and
``state`` (tm's state on a message context). Also ``contacts``, ``uac`` (local requests),
``pvs`` ($T_*), ``rpc`` (tm.*), ``settings`` (modparams), ``stats``.
"""

from __future__ import annotations

from kemi_core.api import Core, KemiExport, hookimpl
from kemi_tm import exports as _exports
from kemi_tm import idents, pvs, rpc, settings
from kemi_tm.relay_fast import compiled_relay
from kemi_tm.reply_fast import compiled_on_reply
from kemi_tm.service import TmService
from kemi_tm.state import MODULE
from kemi_tm.stats import TmStats


@hookimpl
def mod_register(core: Core) -> None:
    settings.declare(core)
    _exports.register_cfg_functions(core)
    pvs.register(core)


@hookimpl
def sr_kemi_modules_add() -> list[KemiExport]:
    return _exports.exports()


@hookimpl
def mod_init(core: Core) -> None:
    # Runs in the main process before the fork: every worker inherits its own copy of the
    # (empty) table, and the counters (core.counter) are shared by all of them.
    tm_settings = settings.TmSettings.from_core(core)
    svc = TmService(core, tm_settings, TmStats(core))
    core.provide(MODULE, svc)
    # the usual relayed reply compiled (reply_fast), the Python on_reply for everything else
    core.add_reply_handler(compiled_on_reply(svc) or svc.on_reply)
    # t_relay of the usual new request compiled (relay_fast), relay.relay for every other
    svc.relay_fast = compiled_relay(svc)
    core.add_send_failure_handler(svc.on_send_failed)
    rpc.register(core, svc)


@hookimpl
def child_init(rank: int) -> None:
    # the worker's rank leads every branch it sends (replies find it: kemi_tm.idents)
    idents.set_rank(rank)
