"""One process at a time may decide that the trial budget has room and create the next trial.

(``make_storage`` also takes a ``ClaimLock`` of its own, so that processes starting on a
fresh database do not create its tables at the same time.)

Without this, two workers that both see ``n_trials - 1`` finished trials would both start
one and the study would overshoot its budget. The lock spans only that check and the
creation of the trial (never its training), so workers still train in parallel:

- SQLite file: ``flock`` on the database file itself. SQLite locks with ``fcntl`` byte
  ranges, a separate kind of lock on Linux, so the two do not interfere and no extra file
  is left behind.
- PostgreSQL: a session-level advisory lock keyed by the study name.
- Other storages (in-memory SQLite, MySQL, ...): no lock. Only one process can use an
  in-memory study anyway; several processes on another server could overshoot
  ``n_trials`` by up to one trial per extra process.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from automl_rnn.storage_url import backend, sqlite_path


def advisory_key(study_name: str) -> int:
    """A stable signed 64-bit key of the study, for ``pg_advisory_lock``."""
    digest = hashlib.sha256(f"automl_rnn:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class ClaimLock:
    """The budget lock of one study in one storage (see the module docstring).

    ``acquire`` blocks until this process holds the lock; ``release`` is idempotent, so the
    holder may release it as soon as its trial exists and again in a ``finally``.
    """

    def __init__(self, url: str, study_name: str) -> None:
        self.url, self.study_name = url, study_name
        self.held = False
        self._file: int | None = None
        self._connection: Any = None

    def acquire(self) -> None:
        """Wait for the lock and take it."""
        if self.held:
            return
        path = sqlite_path(self.url)
        if path is not None:
            import fcntl

            if self._file is None:
                self._file = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)  # an empty file is an empty database
            fcntl.flock(self._file, fcntl.LOCK_EX)
        elif backend(self.url) == "postgresql":
            self._execute("SELECT pg_advisory_lock(:key)")
        self.held = True

    def release(self) -> None:
        """Let the next process claim a trial (no-op when not held)."""
        if not self.held:
            return
        self.held = False
        if self._file is not None:
            import fcntl

            fcntl.flock(self._file, fcntl.LOCK_UN)
        elif self._connection is not None:
            self._execute("SELECT pg_advisory_unlock(:key)")

    def close(self) -> None:
        """Release the lock and free the file or database connection."""
        self.release()
        if self._file is not None:
            os.close(self._file)
            self._file = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _execute(self, statement: str) -> None:
        import sqlalchemy

        if self._connection is None:
            engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
            self._connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._connection.execute(sqlalchemy.text(statement), {"key": advisory_key(self.study_name)})
