"""Test-only kemi plugins: a module (testmod) and an engine (replier)."""
