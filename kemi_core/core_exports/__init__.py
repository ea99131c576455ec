"""Kamailio's core KEMI exports: ``KSR.<name>``, ``KSR.hdr.*``, ``KSR.pv.*``, ``KSR.x.*``.

The lead registers them at start-up with ``core.registry.add(core_exports())``.
"""

from __future__ import annotations

from kemi_core.core_exports import flags, forward, hdr, log, msg_tests, myself, pv, uri, x
from kemi_core.kemi.exports import KemiExport


def core_exports() -> list[KemiExport]:
    """Every core export record, fresh each call (the registry refuses duplicates)."""
    out: list[KemiExport] = []
    for mod in (log, msg_tests, myself, flags, uri, forward, hdr, pv, x):
        out.extend(mod.exports())
    return out


__all__ = ["core_exports"]
