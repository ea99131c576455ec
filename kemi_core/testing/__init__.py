"""Helpers for testing kemi and its plugins: offline cores, a tiny SIP client, real servers.

``kemi_core.testing`` is public for tests (a plugin's own ``tests/`` and test harnesses), beside
``kemi_core.api``: ``offline_core`` builds a Core with modules loaded and a transport that
records what would be sent; ``context`` turns raw SIP into the MsgContext a KEMI function gets;
``attach_dispatcher`` routes messages through the real dispatcher; ``request`` writes a
well-formed request. ``PostgresServer`` / the ``postgres_server`` fixture run a private
PostgreSQL for database tests. The submodules (``process``, ``sipp``, ``udp_client``) serve kemi's own
end-to-end suite and may be imported directly for that.
"""

from __future__ import annotations

from kemi_core.plugins import ModuleLoader, installed_modules
from kemi_core.testing.capture import (
    CaptureTransport,
    Sent,
    add_core_exports,
    attach_dispatcher,
    context,
    offline_core,
)
from kemi_core.testing.postgres import PostgresServer, postgres_server
from kemi_core.testing.udp_client import request

__all__ = [
    "CaptureTransport",
    "PostgresServer",
    "ModuleLoader",
    "Sent",
    "add_core_exports",
    "attach_dispatcher",
    "context",
    "installed_modules",
    "offline_core",
    "postgres_server",
    "request",
]
