"""Databases for tests: the tables of some modules made the way a user makes them."""

from __future__ import annotations

import subprocess
import sys


def db_init(url: str, *modules: str) -> None:
    """``kemi db init URL MODULE...`` (Kamailio's ``kamdbctl create`` for those modules): their
    tables and version rows, through the real command line; its output in the error if it fails."""
    out = subprocess.run([sys.executable, "-m", "kemi_core.cli", "db", "init", url, *modules],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"kemi db init {url} {' '.join(modules)} failed:\n"
                           f"{out.stdout}{out.stderr}")
