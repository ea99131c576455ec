"""Server runtime: per-message context, the core facade modules see, dispatch and workers."""
