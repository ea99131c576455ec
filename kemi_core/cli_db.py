"""``kemi db``: create the tables of modules that take a ``db_url`` (Kamailio's ``kamdbctl``)."""

from __future__ import annotations

from typing import Annotated

import typer

db_app = typer.Typer(help="Database tables for modules that take a db_url (like kamdbctl).",
                     no_args_is_help=True)


@db_app.command("init")
def init(
    url: Annotated[str, typer.Argument(help="db_url: sqlite:///path/file.db or postgres://user:pass@host:port/db")],
    modules: Annotated[list[str] | None, typer.Argument(help="modules whose tables to create (default: all of Kamailio's), e.g. usrloc auth_db; acc_extra adds the columns the official example's WITH_ACCDB asks for")] = None,
    sql: Annotated[bool, typer.Option("--sql", help="print the SQL for the URL's kind of database instead of running it")] = False,
) -> None:
    """Create the database (a SQLite file, or a PostgreSQL database the user may create), the
    tables of MODULES and their rows in table version. Running it again changes nothing."""
    from kemi_core.db import tables as known
    from kemi_core.db.ddl import schema_script
    from kemi_core.db.provision import create_tables
    from kemi_core.db.standalone import open_standalone
    from kemi_core.errors import KemiError

    try:
        chosen = known.tables_for(modules)
    except KeyError as exc:
        typer.echo(f"kemi: {exc.args[0]}", err=True)
        raise typer.Exit(code=2)
    try:
        db = open_standalone(url)
        if sql:
            typer.echo(schema_script(chosen, db.backend.dialect), nl=False)
            return
        if db.create_database():
            typer.echo(f"created database {db.url}")
        report = create_tables(db, chosen)
    except KemiError as exc:
        typer.echo(f"kemi: {exc}", err=True)
        raise typer.Exit(code=1)
    if report.created:
        typer.echo(f"created: {', '.join(report.created)}")
    if report.added:
        typer.echo(f"columns added: {', '.join(report.added)}")
    if report.present:
        typer.echo(f"already there: {', '.join(report.present)}")
