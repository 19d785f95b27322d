"""What an Optuna storage URL (a SQLAlchemy database URL) points at."""

from __future__ import annotations

from sqlalchemy.engine import make_url

IN_MEMORY_DATABASES = (None, "", ":memory:")


def backend(url: str) -> str:
    """The database backend of ``url``: ``sqlite``, ``postgresql``, ``mysql``, ...

    Raises:
        sqlalchemy.exc.ArgumentError: ``url`` is not a database URL.
    """
    return make_url(url).get_backend_name()


def sqlite_path(url: str) -> str | None:
    """The database file of an SQLite URL, or None for another backend or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in IN_MEMORY_DATABASES:
        return None
    return None if str(parsed.database).startswith("file::memory:") else str(parsed.database)


def is_in_memory(url: str) -> bool:
    """True for an SQLite URL without a file: the study lives and dies with its process."""
    return backend(url) == "sqlite" and sqlite_path(url) is None
