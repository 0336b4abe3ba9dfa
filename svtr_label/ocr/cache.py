"""Prediction cache keyed by image content hash and model_version: a rerun costs a lookup."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from svtr_label.core.page import Page
from svtr_label.core.wal import connect_wal


class PredictionCache:
    """A small SQLite table of pages. Safe across threads and processes (WAL, one short transaction a call)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS pages (sha256 TEXT NOT NULL, model_version TEXT NOT NULL,"
                " page TEXT NOT NULL, PRIMARY KEY (sha256, model_version))"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_wal(self.path)
            self._local.conn = conn
        return conn

    def get(self, sha256: str, model_version: str) -> Page | None:
        row = self._conn().execute(
            "SELECT page FROM pages WHERE sha256 = ? AND model_version = ?", (sha256, model_version)
        ).fetchone()
        return Page.from_dict(json.loads(row[0])) if row else None

    def put(self, page: Page) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO pages (sha256, model_version, page) VALUES (?, ?, ?)",
                (page.sha256, page.model_version, json.dumps(page.to_dict(), ensure_ascii=False)),
            )

    def __len__(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM pages").fetchone()[0])
