"""The suite's private PostgreSQL (kemi_core.testing's session fixture)."""

from kemi_core.testing import postgres_server  # noqa: F401
