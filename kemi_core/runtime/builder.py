"""From kamailio.cfg to a ready Core: modules loaded, params set, engine chosen and checked.

Used by ``kemi check`` (stops here) and ``kemi run`` (forks workers next). Every failure is a
ConfigError/ScriptError/ModuleError whose text names the file and line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import attrs

from kemi_core.config import parse_config
from kemi_core.config.model import CoreConfig, ListenAddr, RouteBlock
from kemi_core.engine import Engine, EngineSpec
from kemi_core.errors import ConfigError, ModuleError
from kemi_core.plugins import ModuleEntry, ModuleLoader
from kemi_core.rpc.core_commands import register_core_commands
from kemi_core.runtime.clock import Clock
from kemi_core.runtime.core import Core

log = logging.getLogger("kemi.builder")


@attrs.define
class Overrides:
    """Command-line settings that win over kamailio.cfg (Kamailio's -l, -n, -A)."""

    listen: list[str] = attrs.Factory(list)
    children: int | None = None
    fork: bool | None = None
    defines: dict[str, str] = attrs.Factory(dict)


@attrs.define
class Built:
    core: Core
    loader: ModuleLoader
    engine_spec: EngineSpec


def parse_listen(text: str) -> ListenAddr:
    """``udp:127.0.0.1:5060`` / ``127.0.0.1:5070`` / ``tcp:[::1]:5060`` for -l."""
    proto = "udp"
    rest = text
    for p in ("udp:", "tcp:", "tls:", "sctp:", "ws:", "wss:"):
        if text.lower().startswith(p):
            proto, rest = p[:-1], text[len(p):]
            break
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = int(tail[1:]) if tail.startswith(":") else 5060
    elif rest.count(":") == 1:
        host, port_s = rest.split(":")
        port = int(port_s)
    else:
        host, port = rest, 5060
    return ListenAddr(proto=proto, host=host, port=port)


def load_config(path: str | Path, overrides: Overrides | None = None) -> CoreConfig:
    ov = overrides or Overrides()
    cfg = parse_config(path, defines=ov.defines or None)
    cfg.extra["cli_defines"] = dict(ov.defines)  # for reloads that re-read the file
    if ov.listen:
        cfg.listen = [parse_listen(x) for x in ov.listen]
    if ov.children is not None:
        cfg.children = ov.children
    if ov.fork is not None:
        cfg.fork = ov.fork
    if not cfg.listen:
        cfg.listen = default_listen(cfg)
        log.info("no listen= in the config: listening on every local IPv4 address, as Kamailio")
    return cfg


def default_listen(cfg: CoreConfig) -> list[ListenAddr]:
    """Kamailio's sockets when no ``listen=`` is given: UDP and TCP (unless disable_tcp) on each
    IPv4 address of the host's interfaces (IPv6 too with auto_bind_ipv6), at ``port``."""
    from kemi_core.runtime.interfaces import local_addresses

    ipv6 = bool(_int_param(cfg, "auto_bind_ipv6"))
    protos = ["udp"] if _int_param(cfg, "disable_tcp") else ["udp", "tcp"]
    addrs = local_addresses(ipv6=ipv6) or ["127.0.0.1"]
    return [ListenAddr(proto, ip, cfg.port) for proto in protos for ip in addrs]


def _int_param(cfg: CoreConfig, name: str) -> int:
    value = cfg.ignored.get(name, 0)  # kemi accepts these and acts on them only here
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def native_engine_spec(cfg: CoreConfig, core: Core) -> EngineSpec:
    """The built-in engine for the kamailio.cfg routing language, with live ``cfg.reload``
    (the core-managed reload: the route blocks are read again from the config file)."""
    from kemi_core.native.engine import NativeEngine

    def reload_source() -> list[RouteBlock]:
        return parse_config(cfg.source, defines=cfg.extra.get("cli_defines") or None).routes

    first = [cfg.routes]  # the blocks parsed at start serve the first engine

    def factory(core: Core) -> Engine:
        blocks = first.pop() if first else None
        return NativeEngine(core, blocks, reload_source=reload_source)

    core.add_rpc("cfg.reload", lambda core, params: core.rpc_reload_engine("native"),
                 "Recompile kamailio.cfg's route blocks; every worker switches at its next message")
    return EngineSpec("native", factory, "kamailio.cfg routing blocks, compiled to closures")


def load_modules(cfg: CoreConfig, available: dict[str, ModuleEntry] | None = None,
                 missing: list[str] | None = None,
                 clock: Clock | None = None) -> tuple[Core, ModuleLoader]:
    """A Core with the core exports, every loadmodule loaded and every modparam applied.

    With a ``missing`` list, modules that are not installed are recorded there (with the
    modparams that name them skipped) instead of failing: ``kemi check --syntax-only``.
    ``clock``: the Core's clock (default: the real one; tests pass a VirtualClock).
    """
    from kemi_core.core_exports import core_exports

    core = Core(cfg, clock)
    core.registry.add(core_exports())
    register_core_commands(core)
    loader = ModuleLoader(core, available)
    for lm in cfg.loadmodules:
        if missing is not None and lm.name not in loader.available:
            missing.append(f"{lm.file}:{lm.line}: module {lm.name} is not installed")
            continue
        loader.load(lm.raw, lm.file, lm.line)
    for mp in cfg.modparams:
        if missing is not None and mp.module not in core.loaded_modules:
            continue
        core.set_param(mp.module, mp.name, mp.value, mp.file, mp.line)
    return core, loader


def build_core_without_engine(cfg: CoreConfig, missing: list[str] | None = None) -> Core:
    """Modules loaded and params set, no engine and no mod_init (``kemi check --syntax-only``)."""
    return load_modules(cfg, missing=missing)[0]


def build(cfg: CoreConfig, available: dict[str, ModuleEntry] | None = None,
          extra_setup: Callable[[Core], None] | None = None,
          clock: Clock | None = None) -> Built:
    """Load modules, apply modparams, pick and check the engine, run mod_init."""
    core, loader = load_modules(cfg, available, clock=clock)
    spec = _select_engine(cfg, core, loader)
    if extra_setup is not None:
        extra_setup(core)
    try:
        loader.init_all()
    except ModuleError as exc:
        raise ConfigError(str(exc), cfg.source)
    core.use_engine(spec)  # loads and checks the script here, before any worker exists
    return Built(core, loader, spec)


def _select_engine(cfg: CoreConfig, core: Core, loader: ModuleLoader) -> EngineSpec:
    name = cfg.engine_name
    where = cfg.cfgengine_line
    if name == "native":
        return native_engine_spec(cfg, core)
    spec = core.engine_specs.get(name)
    if spec is None:
        raise ConfigError(
            f"config engine {name!r} is not registered: load the module that provides it "
            f"(e.g. loadmodule \"app_{name}.so\") before cfgengine",
            where.file if where else cfg.source, where.line if where else None)
    if where is not None:
        # Kamailio: cfgengine must come after the loadmodule of the engine's module.
        provider = loader.engine_modules.get(name)
        for lm in cfg.loadmodules:
            if lm.name == provider and lm.file == where.file and lm.line > where.line:
                raise ConfigError(f"cfgengine {name!r} comes before loadmodule \"{lm.raw}\" "
                                  f"(line {lm.line}) that provides it", where.file, where.line)
    return spec

