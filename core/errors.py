"""The project's input errors. Each message is one user-facing sentence, then what to do; the CLIs print it as
`error: <message>` with exit status 2 (cli.run)."""
from __future__ import annotations


class DataError(ValueError):
    """Bad or missing input data."""


class ModelError(ValueError):
    """A bad model name, option or run folder."""


class UsageError(ValueError):
    """A bad flag value."""
