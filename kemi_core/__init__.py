"""kemi: Kamailio's KEMI config engines, re-created in Python."""

import pluggy

PROJECT_NAME = "kemi"
__version__ = "0.1.0"

#: Marker for plugin hook implementations: ``@hookimpl def mod_register(core): ...``
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
#: Marker for the hook specifications in :mod:`kemi_core.hookspecs`.
hookspec = pluggy.HookspecMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "__version__", "hookimpl", "hookspec"]
