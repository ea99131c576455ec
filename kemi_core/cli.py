"""``kemi``: run, check, rpc, modules, docs, version (typer)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from kemi_core import __version__
from kemi_core.errors import KemiError

app = typer.Typer(help="kemi: a SIP server whose routing logic runs in Lua, Python or kamailio.cfg.",
                  no_args_is_help=True, add_completion=False)

CfgOpt = Annotated[Path, typer.Option("-f", "--config", help="kamailio.cfg to use")]
DefineOpt = Annotated[list[str] | None, typer.Option("-A", "--define", help="#!define NAME[=VALUE]")]


def _defines(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        name, _, value = item.partition("=")
        out[name] = value
    return out


def _fail(exc: Exception) -> None:
    typer.echo(f"kemi: {exc}", err=True)
    raise typer.Exit(code=1)


@app.command()
def run(
    config: CfgOpt = Path("/etc/kamailio/kamailio.cfg"),
    check_only: Annotated[bool, typer.Option("-c", help="check the config and exit")] = False,
    log_stderr: Annotated[bool, typer.Option("-E", help="log to stderr (always on)")] = True,
    foreground: Annotated[int, typer.Option("-D", count=True, help="accepted: kemi stays in the foreground")] = 0,
    listen: Annotated[list[str] | None, typer.Option("-l", help="listen address proto:host:port")] = None,
    children: Annotated[int | None, typer.Option("-n", help="number of workers")] = None,
    pid_file: Annotated[str | None, typer.Option("-P", help="pid file")] = None,
    define: DefineOpt = None,
    debug: Annotated[int | None, typer.Option("--debug", help="override debug=")] = None,
    log_engine: Annotated[str | None, typer.Option("--log-engine", help="json[:flags], overrides log_engine_type/log_engine_data")] = None,
) -> None:
    """Start the server in the foreground, logging to stderr (what systemd and containers want)."""
    from kemi_core.runtime.builder import Overrides, build, load_config
    from kemi_core.runtime.logs import parse_log_engine, setup_logging
    from kemi_core.runtime.server import Server

    try:
        cfg = load_config(config, Overrides(listen=listen or [], children=children,
                                            defines=_defines(define)))
        if debug is not None:
            cfg.debug = debug
        if log_engine is not None:
            cfg.log_engine_type, cfg.log_engine_data = parse_log_engine(log_engine)
        setup_logging(cfg.debug, cfg.log_prefix, engine=cfg.log_engine_type,
                      engine_data=cfg.log_engine_data)
        built = build(cfg)
        if check_only:
            typer.echo(f"{config}: ok ({len(built.core.loaded_modules)} modules, engine {cfg.engine_name})")
            return
        code = Server(built, pid_file).run()
    except (KemiError, ValueError) as exc:
        _fail(exc)
        return
    _exit_now(code)


def _exit_now(code: int) -> None:
    """Leave once the server has cleaned up: atexit handlers and buffers yes, but not the
    interpreter's teardown of every module and object (a tenth of a second for nothing)."""
    import atexit
    import logging
    import os

    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@app.command()
def check(
    config: CfgOpt = Path("/etc/kamailio/kamailio.cfg"),
    define: DefineOpt = None,
    syntax_only: Annotated[bool, typer.Option("--syntax-only", help="native routes: list unknown functions instead of failing")] = False,
) -> None:
    """Check a config and its routing script without starting the server."""
    from kemi_core.runtime.builder import Overrides, build, load_config
    from kemi_core.runtime.logs import setup_logging

    try:
        cfg = load_config(config, Overrides(defines=_defines(define)))
        setup_logging(min(cfg.debug, 1))
        if syntax_only and cfg.engine_name == "native":
            _check_native_syntax(cfg)
            return
        built = build(cfg)
    except KemiError as exc:
        _fail(exc)
        return
    typer.echo(f"{config}: ok ({len(built.core.loaded_modules)} modules, engine {cfg.engine_name})")


def _check_native_syntax(cfg: Any) -> None:
    from kemi_core.native.engine import check_blocks
    from kemi_core.runtime.builder import build_core_without_engine

    missing: list[str] = []
    core = build_core_without_engine(cfg, missing)
    for line_text in missing:
        typer.echo(line_text)
    errors = check_blocks(core, cfg.routes, syntax_only=True)
    unknown = errors.unknown_functions
    for name, file, line in unknown:
        typer.echo(f"{file}:{line}: function {name} is not provided by any installed module")
    for err in errors:
        typer.echo(str(err), err=True)
    if errors:
        raise typer.Exit(code=1)
    typer.echo(f"{cfg.source}: syntax ok ({len(cfg.routes)} route blocks, {len(unknown)} unknown functions)")


@app.command()
def rpc(
    method: Annotated[str, typer.Argument(help="command, e.g. core.version or app_lua.reload")],
    params: Annotated[list[str] | None, typer.Argument(help="parameters (ints are sent as numbers)")] = None,
    socket: Annotated[str | None, typer.Option("-s", "--socket", help="unix:/path of the control socket")] = None,
) -> None:
    """Call a control-socket command (like kamcmd); exits non-zero on an RPC error.

    Without -s: $KEMI_CTL, else the default ``kemi run`` uses (/run/kemi/kemi_ctl as root,
    $XDG_RUNTIME_DIR/kemi/kemi_ctl or <tmp>/kemi-<uid>/kemi_ctl for other users)."""
    from kemi_core.cli_stats import call_or_exit, ctl_spec

    spec = ctl_spec(socket)
    args: list[Any] = [int(p) if p.lstrip("-").isdigit() else p for p in params or []]
    result = call_or_exit(spec, method, args)
    typer.echo(result if isinstance(result, str) else json.dumps(result, indent=2))


@app.command()
def modules() -> None:
    """Installed modules and engines, their distributions and export counts."""
    from kemi_core.config.model import CoreConfig
    from kemi_core.plugins import ModuleLoader, installed_modules
    from kemi_core.runtime.core import Core

    for name, entry in sorted(installed_modules().items()):
        core = Core(CoreConfig())
        loader = ModuleLoader(core)
        try:
            loader.load(name)
            exports = len(core.registry)
            engines = ",".join(core.engine_specs) or "-"
            typer.echo(f"{name:16} {entry.dist:24} exports={exports:<4} engines={engines}")
        except KemiError as exc:
            typer.echo(f"{name:16} {entry.dist:24} BROKEN: {exc}")


@app.command()
def docs(
    fmt: Annotated[str, typer.Option("--format", help="md or json")] = "md",
    stubs: Annotated[Path | None, typer.Option("--stubs", help="write KSR.pyi and KSR.lua into DIR")] = None,
) -> None:
    """Every KEMI export of the installed modules (the seed's documentation to-do)."""
    from kemi_core.kemi.docs import all_modules_core, as_json, as_markdown

    core = all_modules_core()
    registry = core.registry
    if stubs is not None:
        assert core.loader is not None
        if not core.loader.write_script_stubs(str(stubs)):
            _fail(KemiError("no installed module writes script stubs (kemi-engine-python does)"))
            return
        typer.echo(f"wrote stubs for {len(registry)} functions into {stubs}")
        return
    if fmt == "json":
        typer.echo(json.dumps(as_json(registry), indent=2))
    elif fmt == "md":
        typer.echo(as_markdown(registry))
    else:
        _fail(KemiError(f"unknown format {fmt!r}: md or json"))


from kemi_core.cli_db import db_app  # noqa: E402 - kept apart from the commands above

app.add_typer(db_app, name="db")

from kemi_core.cli_stats import register_stats_commands  # noqa: E402 - kemi stats, kemi top

register_stats_commands(app)

from kemi_core.cli_new import new_app  # noqa: E402 - kemi new module|engine NAME

app.add_typer(new_app, name="new")


def _version_text() -> str:
    return f"kemi {__version__} (Python {sys.version.split()[0]})"


@app.command()
def version() -> None:
    """Print kemi's version."""
    typer.echo(_version_text())


def _print_version(value: bool) -> None:
    if value:
        typer.echo(_version_text())
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[bool, typer.Option(
        "--version", "-v", "-V", is_eager=True, callback=_print_version,
        help="print kemi's version and exit (Kamailio's -v and -V too)")] = False,
) -> None:
    pass


if __name__ == "__main__":
    app()
