"""A :class:`Database` outside a running server (``kemi db init``, tests, scripts): the
backend module for the URL's scheme is loaded the way ``loadmodule`` would load it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kemi_core.db.backend import SCHEME_MODULES
from kemi_core.db.database import Database
from kemi_core.db.url import parse_db_url


def open_standalone(url: str, params: Mapping[str, Any] | None = None) -> Database:
    """Open ``url`` with its backend module loaded into a private core; ``params`` are that
    module's modparams (``{"busy_timeout": 500}``)."""
    from kemi_core.config.model import CoreConfig
    from kemi_core.db import open_db
    from kemi_core.plugins import ModuleLoader
    from kemi_core.runtime.core import Core

    parsed = parse_db_url(url)
    module = SCHEME_MODULES.get(parsed.scheme, f"db_{parsed.scheme}")
    core = Core(CoreConfig())
    loader = ModuleLoader(core)
    loader.load(module)
    for name, value in (params or {}).items():
        core.set_param(module, name, value)
    return open_db(core, url)
