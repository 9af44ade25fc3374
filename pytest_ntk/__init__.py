"""pytest-ntk."""
