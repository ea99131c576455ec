"""Files named by modparams (routing scripts): where a relative path is looked for.

A relative path is read against the directory of the config file that holds the modparam, so
``kemi check -f /abs/path/kamailio.cfg`` works from any directory. Configs written for the old
rule (relative to the working directory, as Kamailio reads them) keep working: the working
directory is the fallback. A debug line says which one was used.
"""

from __future__ import annotations

import logging
import os

from kemi_core.errors import ConfigError

log = logging.getLogger("kemi.config")


def candidates(value: str, cfg_file: str | None) -> list[tuple[str, str]]:
    """(path, what it is relative to) to try, in order."""
    if os.path.isabs(value):
        return [(value, "absolute")]
    found: list[tuple[str, str]] = []
    if cfg_file:
        cfg_dir = os.path.dirname(os.path.abspath(cfg_file))
        found.append((os.path.join(cfg_dir, value), f"the config's directory {cfg_dir}"))
    cwd = os.getcwd()
    found.append((os.path.join(cwd, value), f"the working directory {cwd}"))
    return found


def resolve_existing_file(value: str, what: str, cfg_file: str | None,
                          line: int | None) -> str:
    """The absolute path of the existing file ``value`` names (``what`` is e.g.
    ``app_lua.load``); ConfigError at the modparam's file:line when there is none."""
    tried = candidates(value, cfg_file)
    for path, base in tried:
        if os.path.isfile(path):
            log.debug("%s: %r is %s (%s)", what, value, os.path.normpath(path), base)
            return os.path.normpath(path)
    where = " or ".join(base for _, base in tried) if len(tried) > 1 else tried[0][0]
    if os.path.isabs(value):
        reason = f"{what}: file {value} not found"
    else:
        reason = f"{what}: file {value!r} not found (looked in {where})"
    raise ConfigError(reason, cfg_file, line)
