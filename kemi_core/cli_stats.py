"""``kemi stats`` (statistics, ``--json`` for plotting) and ``kemi top`` (a live dashboard).

Both read the ``kemi.stats`` RPC of a running server's control socket.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer

SocketOpt = Annotated[str | None, typer.Option("-s", "--socket", help="control socket (unix:/path or tcp:host:port)")]


def ctl_spec(socket: str | None) -> str:
    """``-s``, else $KEMI_CTL, else the default ``kemi run`` listens on (per user unless root)."""
    from kemi_core.rpc.paths import default_spec

    return socket or default_spec()


def call_or_exit(spec: str, method: str, params: list[Any] | None = None) -> Any:
    """The command's result; on an RPC error or an unreachable socket, say so and exit 1 / 2."""
    from kemi_core.rpc.client import CtlUnreachable, RpcError, call

    try:
        return call(spec, method, params or [])
    except RpcError as exc:
        typer.echo(f"error: {exc.code} - {exc.message}", err=True)
        raise typer.Exit(code=1)
    except CtlUnreachable as exc:  # its text names the socket and the reason, in one line
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: cannot reach {spec}: {exc}", err=True)
        raise typer.Exit(code=2)


def _fetch(spec: str) -> dict[str, Any]:
    snap: dict[str, Any] = call_or_exit(spec, "kemi.stats")
    return snap


def _matches(name: str, keys: list[str]) -> bool:
    group, _, stat = name.partition(":")
    return any(k in ("all", name, stat, f"{group}:") for k in keys)


def stats(
    keys: Annotated[list[str] | None, typer.Argument(help="all (default), group: or name")] = None,
    socket: SocketOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per sample (JSON lines): time, statistics, processes")] = False,
    interval: Annotated[float, typer.Option("-i", "--interval", help="seconds between samples")] = 1.0,
    count: Annotated[int, typer.Option("-n", "--count", help="samples to take (plot a time series with --json)")] = 1,
) -> None:
    """Statistics of a running server: "group:name = value" lines, or JSON lines for plotting."""
    spec = ctl_spec(socket)
    wanted = keys or ["all"]
    for i in range(max(count, 1)):
        if i:
            time.sleep(interval)
        snap = _fetch(spec)
        chosen = {k: v for k, v in snap["statistics"].items() if _matches(k, wanted)}
        if as_json:
            typer.echo(json.dumps({**snap, "statistics": chosen}))
        else:
            for name, value in chosen.items():
                typer.echo(f"{name} = {value}")
        sys.stdout.flush()


def top(
    socket: SocketOpt = None,
    interval: Annotated[float, typer.Option("-i", "--interval", help="seconds between refreshes")] = 1.0,
    iterations: Annotated[int, typer.Option("-n", "--iterations", help="stop after N refreshes (0: until Ctrl-C)")] = 0,
) -> None:
    """A live view of a running server: rates of requests and replies by class, transactions,
    errors, per-process CPU and restarts."""
    from rich.console import Console
    from rich.live import Live

    from kemi_core.dashboard import render

    spec = ctl_spec(socket)
    console = Console()
    prev = None
    cur = _fetch(spec)
    done = 0
    try:
        with Live(render(prev, cur, spec), console=console, auto_refresh=False,
                  screen=console.is_terminal) as live:
            while iterations <= 0 or done < iterations:
                time.sleep(interval)
                prev, cur = cur, _fetch(spec)
                live.update(render(prev, cur, spec), refresh=True)
                done += 1
    except KeyboardInterrupt:
        pass


def register_stats_commands(app: typer.Typer) -> None:
    app.command("stats")(stats)
    app.command("top")(top)
