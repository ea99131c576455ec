"""What a script engine's module (app_lua, app_jsdt ...) does the same as the others.

Its state for one Core is an app object, provided as the service named after the module, so
every hook reaches it through the core it is given; :func:`app_hooks` writes those hooks.
At start-up the script is checked (:func:`check_script`) and read as UTF-8 text
(:func:`read_script`), with ``file: reason`` errors a user can act on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from kemi_core import hookimpl
from kemi_core.errors import ScriptError

if TYPE_CHECKING:
    from kemi_core.engine import EngineSpec
    from kemi_core.runtime.core import Core


@runtime_checkable
class EngineApp(Protocol):
    """An engine module's state for one Core (made at loadmodule, in the main process)."""

    def mod_init(self) -> None: ...

    def engine_specs(self) -> list[EngineSpec]: ...


def app_hooks(module: str, make_app: Callable[[Core], EngineApp]
              ) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """The hooks ``mod_register`` (provides ``make_app(core)`` as the service ``module``),
    ``sr_kemi_eng_register`` and ``mod_init`` (the app's), for a plugin to name at its top level:
    ``mod_register, sr_kemi_eng_register, mod_init = app_hooks(MODULE, AppLua)``."""

    @hookimpl
    def mod_register(core: Core) -> None:
        core.provide(module, make_app(core))

    @hookimpl
    def sr_kemi_eng_register(core: Core) -> list[EngineSpec]:
        return core.require(module, EngineApp).engine_specs()

    @hookimpl
    def mod_init(core: Core) -> None:
        core.require(module, EngineApp).mod_init()

    return mod_register, sr_kemi_eng_register, mod_init


def check_script(core: Core, module: str, engine: str, script: str,
                 check: Callable[[], object], example: str) -> None:
    """An engine module's start-up check of its script (``modparam(module, "load")``).

    No script: an error when ``engine`` is the cfgengine, else a warning (the module may only
    serve functions such as jsdt_run). A script but another cfgengine: ``check()`` loads it
    now, so a broken one stops start-up all the same (the cfgengine's is loaded by the core).
    """
    if not script:
        if core.config.engine_name == engine:
            raise ScriptError(f"{module}: cfgengine is \"{engine}\" but no script is set: "
                              f"modparam(\"{module}\", \"load\", \"{example}\")")
        logging.getLogger(f"kemi.{module}").warning("%s: loaded without a script (modparam load)",
                                                    module)
    elif core.config.engine_name != engine:
        check()


def read_script(path: str, what: str) -> str:
    """The text of the script file ``path`` (``what``: "Lua script"); ScriptError naming the
    file when it is missing, unreadable or not UTF-8."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ScriptError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as exc:
        raise ScriptError(f"{path}: the {what} is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ScriptError(f"{path}: cannot read the {what}: {exc.strerror}") from None
