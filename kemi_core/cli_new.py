"""``kemi new module NAME`` / ``kemi new engine NAME``: write a ready plugin distribution."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

new_app = typer.Typer(help="Write a ready plugin distribution (pyproject, code, README, a test).",
                      no_args_is_help=True)

DirOpt = Annotated[Path, typer.Option("--dir", "-d", help="where to create kemi-NAME/")]


def _write(kind: str, name: str, parent: Path) -> None:
    from kemi_core.errors import KemiError
    from kemi_core.scaffold import new_distribution

    try:
        root = new_distribution(kind, name, parent)
    except KemiError as exc:
        typer.echo(f"kemi: {exc}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"wrote {root}\nnext: pip install -e '{root}[test]' && pytest {root / 'tests'}")


@new_app.command("module")
def module(name: Annotated[str, typer.Argument(help="the loadmodule name, e.g. hello")],
           directory: DirOpt = Path(".")) -> None:
    """A SIP module NAME: one KEMI export, a parameter, a counter and an RPC command."""
    _write("module", name, directory)


@new_app.command("engine")
def engine(name: Annotated[str, typer.Argument(help="the cfgengine name, e.g. rules")],
           directory: DirOpt = Path(".")) -> None:
    """A config engine NAME (module app_NAME): a minimal rules engine with load() and run()."""
    _write("engine", name, directory)
