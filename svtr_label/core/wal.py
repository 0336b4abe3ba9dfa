"""SQLite files shared by threads and processes (the corrections store, the prediction cache), in WAL mode."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

BUSY_TIMEOUT = 30.0  # seconds a writer waits for another before giving up


def connect_wal(path: str | Path, *, synchronous: str = "NORMAL", **kwargs: object) -> sqlite3.Connection:
    """A connection in WAL mode. Switching a new file to WAL needs a lock that SQLite's busy timeout
    does not wait for: when several processes open the same new file at once (gunicorn workers on
    their first webhook), the loser used to fail with "database is locked". It waits here instead."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT, **kwargs)  # type: ignore[arg-type]
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(0.05)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn
