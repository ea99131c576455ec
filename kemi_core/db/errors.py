"""Errors of the database layer.

A module turns a :class:`DbError` from a call into its Kamailio return code (usually -1) and goes
on; the layer has already logged what happened. :class:`DbVersionError` comes from the table
version check at ``mod_init`` and stops start-up, as in Kamailio.
"""

from __future__ import annotations

from kemi_core.errors import KemiError, ModuleError


class DbError(KemiError):
    """A database call failed: a statement error, a timeout or an unreachable database."""


class DbUnavailable(DbError):
    """The database cannot be reached now (connection lost or refused, or waiting to retry)."""


class DbVersionError(DbError, ModuleError):
    """A table's row in ``version`` is missing or does not match what the module expects
    (or cannot be read): start-up stops, as in Kamailio."""
