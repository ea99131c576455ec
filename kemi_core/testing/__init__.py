"""Helpers for testing kemi and its plugins: offline cores, a tiny SIP client, real servers.

``kemi_core.testing`` is public for tests (a plugin's own ``tests/`` and test harnesses), beside
``kemi_core.api``: ``offline_core`` builds a Core with modules loaded and a transport that
records what would be sent; ``side_by_side`` runs one kamailio.cfg on kemi and on Kamailio 5.6
and compares their replies (``cfg_preamble`` writes that config's usual start); ``context`` turns raw SIP into the MsgContext a KEMI function gets;
``attach_dispatcher`` routes messages through the real dispatcher; ``engine_fixtures``,
``Calls`` and ``script_writer`` are what config engines' tests share; ``request`` writes a
well-formed request. ``PostgresServer`` / the ``postgres_server`` fixture run a private
PostgreSQL for database tests. ``Router`` is what the ``kemi_router`` fixture (this package's
pytest plugin) returns: kamailio.cfg and its script run in the test's process. The submodules
(``process``, ``sipp``, ``udp_client``) serve kemi's own end-to-end suite (``run_sipp`` and
``sipp_available`` are named here for plugins' tests too) and may be imported
directly for that.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kemi_core.plugins import ModuleLoader, installed_modules
    from kemi_core.testing.capture import (
        CaptureTransport,
        Sent,
        add_core_exports,
        attach_dispatcher,
        context,
        offline_core,
    )
    from kemi_core.testing.engines import (
        ENGINE_INVITE,
        NESTED_ERROR_JS,
        NESTED_RUNS_JS,
        Calls,
        check_error_in_nested_run,
        check_nested_runs,
        engine_fixtures,
        engine_reply,
        load_plugin,
        script_writer,
    )
    from kemi_core.testing.kamailio import (
        KAMAILIO_MPATH,
        KamailioProcess,
        kamailio_available,
        kamcmd,
    )
    from kemi_core.testing.outcome import Outcome, SentMessage
    from kemi_core.testing.postgres import PostgresServer, postgres_server
    from kemi_core.testing.process import KemiProcess, free_port
    from kemi_core.testing.redis import RedisServer, redis_server
    from kemi_core.testing.router import Router, ScriptFailure
    from kemi_core.testing.rtpengine import RtpEngineProcess, rtpengine_available
    from kemi_core.testing.sidebyside import (
        Answer,
        Pair,
        cfg_preamble,
        exchange,
        request_text,
        side_by_side,
    )
    from kemi_core.testing.sipp import run_sipp, sipp_available
    from kemi_core.testing.udp_client import UdpClient, request
    from kemi_core.testing.wait import WaitTimeout, wait_until

#: name -> the module it comes from. Imported on first use: pytest loads this package for every
#: run (the kemi_router plugin lives in it), which must not cost the import of the whole core.
_HOMES = {
    "Calls": "kemi_core.testing.engines",
    "ENGINE_INVITE": "kemi_core.testing.engines",
    "engine_reply": "kemi_core.testing.engines",
    "NESTED_ERROR_JS": "kemi_core.testing.engines",
    "NESTED_RUNS_JS": "kemi_core.testing.engines",
    "check_error_in_nested_run": "kemi_core.testing.engines",
    "check_nested_runs": "kemi_core.testing.engines",
    "engine_fixtures": "kemi_core.testing.engines",
    "load_plugin": "kemi_core.testing.engines",
    "script_writer": "kemi_core.testing.engines",
    "ModuleLoader": "kemi_core.plugins",
    "installed_modules": "kemi_core.plugins",
    "CaptureTransport": "kemi_core.testing.capture",
    "Sent": "kemi_core.testing.capture",
    "add_core_exports": "kemi_core.testing.capture",
    "attach_dispatcher": "kemi_core.testing.capture",
    "context": "kemi_core.testing.capture",
    "offline_core": "kemi_core.testing.capture",
    "Outcome": "kemi_core.testing.outcome",
    "SentMessage": "kemi_core.testing.outcome",
    "PostgresServer": "kemi_core.testing.postgres",
    "postgres_server": "kemi_core.testing.postgres",
    "Router": "kemi_core.testing.router",
    "RtpEngineProcess": "kemi_core.testing.rtpengine",
    "rtpengine_available": "kemi_core.testing.rtpengine",
    "ScriptFailure": "kemi_core.testing.router",
    "request": "kemi_core.testing.udp_client",
    "kamailio_available": "kemi_core.testing.kamailio",
    "RedisServer": "kemi_core.testing.redis",
    "redis_server": "kemi_core.testing.redis",
    "UdpClient": "kemi_core.testing.udp_client",
    "run_sipp": "kemi_core.testing.sipp",
    "sipp_available": "kemi_core.testing.sipp",
    "Answer": "kemi_core.testing.sidebyside",
    "Pair": "kemi_core.testing.sidebyside",
    "cfg_preamble": "kemi_core.testing.sidebyside",
    "exchange": "kemi_core.testing.sidebyside",
    "request_text": "kemi_core.testing.sidebyside",
    "side_by_side": "kemi_core.testing.sidebyside",
    "KemiProcess": "kemi_core.testing.process",
    "KAMAILIO_MPATH": "kemi_core.testing.kamailio",
    "KamailioProcess": "kemi_core.testing.kamailio",
    "kamcmd": "kemi_core.testing.kamailio",
    "free_port": "kemi_core.testing.process",
    "WaitTimeout": "kemi_core.testing.wait",
    "db_init": "kemi_core.testing.database",
    "one_send_held": "kemi_core.testing.held",
    "wait_until": "kemi_core.testing.wait",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "db_init",
    "one_send_held",
    "Calls",
    "ENGINE_INVITE",
    "engine_reply",
    "NESTED_ERROR_JS",
    "NESTED_RUNS_JS",
    "check_error_in_nested_run",
    "check_nested_runs",
    "engine_fixtures",
    "load_plugin",
    "script_writer",
    "KAMAILIO_MPATH",
    "Answer",
    "KamailioProcess",
    "kamcmd",
    "CaptureTransport",
    "KemiProcess",
    "ModuleLoader",
    "Outcome",
    "Pair",
    "PostgresServer",
    "RedisServer",
    "Router",
    "RtpEngineProcess",
    "ScriptFailure",
    "Sent",
    "SentMessage",
    "UdpClient",
    "WaitTimeout",
    "add_core_exports",
    "attach_dispatcher",
    "cfg_preamble",
    "context",
    "exchange",
    "free_port",
    "installed_modules",
    "kamailio_available",
    "offline_core",
    "postgres_server",
    "redis_server",
    "request",
    "request_text",
    "side_by_side",
    "rtpengine_available",
    "run_sipp",
    "sipp_available",
    "wait_until",
]
