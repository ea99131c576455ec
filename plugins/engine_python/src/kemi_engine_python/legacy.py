"""The pre-KEMI objects of Kamailio's app_python: the ``Router`` module and the ``msg`` object.

The seed's example imports ``Router.Logger`` and calls ``msg.rewrite_ruri``; both are kept so
old scripts run unchanged beside ``KSR``.
"""

from __future__ import annotations

import logging
import sys
import syslog
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kemi_core.api import MsgContext

script_log = logging.getLogger("kemi.script")

#: Kamailio's log levels (L_ALERT ... L_DBG) and the Python logging level each maps to.
LEVELS: dict[str, tuple[int, int]] = {
    "L_ALERT": (-5, logging.CRITICAL),
    "L_BUG": (-4, logging.CRITICAL),
    "L_CRIT2": (-3, logging.CRITICAL),
    "L_CRIT": (-2, logging.CRITICAL),
    "L_ERR": (-1, logging.ERROR),
    "L_WARN": (0, logging.WARNING),
    "L_NOTICE": (1, logging.INFO),
    "L_INFO": (2, logging.INFO),
    "L_DBG": (3, logging.DEBUG),
}
_PY_LEVEL = {value: py for value, py in LEVELS.values()}

#: syslog facilities Kamailio's Logger module exposes (LM_GEN2's first argument).
FACILITIES = ["LOG_KERN", "LOG_USER", "LOG_MAIL", "LOG_DAEMON", "LOG_AUTH", "LOG_LOCAL0",
              "LOG_LOCAL1", "LOG_LOCAL2", "LOG_LOCAL3", "LOG_LOCAL4", "LOG_LOCAL5", "LOG_LOCAL6",
              "LOG_LOCAL7"]

#: Process ranks of Router.Ranks (Kamailio's PROC_* values).
RANKS = {"PROC_MAIN": 0, "PROC_TIMER": -1, "PROC_RPC": -2, "PROC_FIFO": -2, "PROC_TCP_MAIN": -4,
         "PROC_UNIXSOCK": -5, "PROC_ATTENDANT": -10, "PROC_INIT": -127, "PROC_NOCHLDINIT": -128,
         "PROC_SIPINIT": 1, "PROC_SIPRPC": 127}


def _emit(level: int, text: Any) -> None:
    if not isinstance(text, str):
        raise TypeError(f"Logger: message must be str, not {type(text).__name__}")
    script_log.log(_PY_LEVEL.get(level, logging.INFO if level > 0 else logging.ERROR),
                   text.rstrip("\n"))


def LM_GEN1(level: int, text: str) -> None:  # noqa: N802 - Kamailio's names
    """Log ``text`` at Kamailio level ``level`` (Logger.L_*)."""
    _emit(level, text)


def LM_GEN2(facility: int, level: int, text: str) -> None:  # noqa: N802
    """Log with a syslog facility; the facility is accepted and the level applies."""
    _emit(level, text)


def _level_logger(name: str, level: int) -> Any:
    def lm(text: str) -> None:
        _emit(level, text)

    lm.__name__ = lm.__qualname__ = name
    lm.__doc__ = f"Log at {name[3:]} level."
    return lm


def build_router() -> types.ModuleType:
    """A fresh ``Router`` package with its ``Logger``, ``Ranks`` and ``Core`` submodules."""
    router = types.ModuleType("Router", "Kamailio's legacy app_python objects (kemi)")
    router.__path__ = []  # a package, so `import Router.Logger` works
    logger = types.ModuleType("Router.Logger", "Kamailio logging from Python scripts")
    for const, (value, _py) in LEVELS.items():
        setattr(logger, const, value)
    logger.DEFAULT_FACILITY = 0  # type: ignore[attr-defined]
    for fac in FACILITIES:
        setattr(logger, fac, getattr(syslog, fac))
    logger.LM_GEN1 = LM_GEN1  # type: ignore[attr-defined]
    logger.LM_GEN2 = LM_GEN2  # type: ignore[attr-defined]
    for short in ("ALERT", "CRIT", "ERR", "WARN", "NOTICE", "INFO", "DBG"):
        setattr(logger, f"LM_{short}", _level_logger(f"LM_{short}", LEVELS[f"L_{short}"][0]))
    ranks = types.ModuleType("Router.Ranks", "Kamailio process ranks")
    for const, value in RANKS.items():
        setattr(ranks, const, value)
    core = types.ModuleType("Router.Core", "Kamailio core objects (kept for imports)")
    for sub in (logger, ranks, core):
        setattr(router, sub.__name__.rsplit(".", 1)[1], sub)
    return router


def install_router() -> None:
    """Put ``Router`` and its submodules in sys.modules (once per process)."""
    if "Router" in sys.modules and getattr(sys.modules["Router"], "Logger", None) is not None:
        return
    router = build_router()
    sys.modules["Router"] = router
    for sub in ("Logger", "Ranks", "Core"):
        sys.modules[f"Router.{sub}"] = getattr(router, sub)


class PyMsg:
    """The ``msg`` argument of class-style callbacks (Kamailio's app_python msg object).

    One is made per run; it only wraps the message context.
    """

    __slots__ = ("_ctx",)

    def __init__(self, ctx: MsgContext) -> None:
        self._ctx = ctx

    def __repr__(self) -> str:
        m = self._ctx.msg
        first = f"{m.method} {m.ruri}" if m.is_request else f"{m.status} {m.reason}"
        return f"<msg {self.Type} {first}>"

    @property
    def ctx(self) -> MsgContext:
        """The kemi message context (beyond Kamailio: for scripts that want everything)."""
        return self._ctx

    @property
    def Type(self) -> str:  # noqa: N802 - Kamailio's attribute names
        return "SIP_REQUEST" if self._ctx.msg.is_request else "SIP_REPLY"

    def _need_request(self, what: str) -> None:
        if not self._ctx.msg.is_request:
            raise TypeError(f"Not a request message - {what}")

    @property
    def Method(self) -> str:  # noqa: N802
        self._need_request("no method available")
        return self._ctx.msg.method

    @property
    def Status(self) -> str:  # noqa: N802
        if self._ctx.msg.is_request:
            raise TypeError("Not a reply message - no status available")
        return str(self._ctx.msg.status)

    @property
    def RURI(self) -> str:  # noqa: N802
        self._need_request("RURI is not available")
        return self._ctx.msg.ruri

    @property
    def src_address(self) -> tuple[str, int]:
        rcv = self._ctx.rcv
        return (rcv.src_ip, rcv.src_port)

    @property
    def dst_address(self) -> tuple[str, int]:
        rcv = self._ctx.rcv
        return (rcv.dst_ip, rcv.dst_port)

    def rewrite_ruri(self, uri: str) -> None:
        self._need_request("rewrite is not possible")
        if not isinstance(uri, str):
            raise TypeError(f"rewrite_ruri(uri): uri must be str, not {type(uri).__name__}")
        self._ctx.msg.set_ruri(uri)

    def set_dst_uri(self, uri: str) -> None:
        self._need_request("set destination is not possible")
        if not isinstance(uri, str):
            raise TypeError(f"set_dst_uri(uri): uri must be str, not {type(uri).__name__}")
        self._ctx.dst_uri = uri

    def getHeader(self, name: str) -> str | None:  # noqa: N802
        if not isinstance(name, str):
            raise TypeError(f"getHeader(name): name must be str, not {type(name).__name__}")
        return self._ctx.msg.header(name)

    def call_function(self, name: str, *args: str) -> int:
        """Call a native kamailio.cfg function by name with str arguments."""
        fn = self._ctx.core.cfg_functions.get(name)
        if fn is None:
            raise RuntimeError(f"{name} is not found (no loaded module exports that cfg function)")
        if not fn.min_args <= len(args) <= fn.max_args:
            want = str(fn.min_args) if fn.min_args == fn.max_args else f"{fn.min_args}..{fn.max_args}"
            raise TypeError(f"{name}() takes {want} arguments, {len(args)} given")
        fixed: list[Any] = []
        for i, arg in enumerate(args):
            if not isinstance(arg, str):
                raise TypeError(f"{name}(): argument {i + 1} must be str, not {type(arg).__name__}")
            if i in fn.int_params:
                try:
                    fixed.append(int(arg, 16) if arg.lower().startswith("0x") else int(arg))
                except ValueError:
                    raise ValueError(f"{name}(): argument {i + 1} must be an integer, got {arg!r}")
            else:
                fixed.append(arg)
        return int(fn.func(self._ctx, *fixed))
