"""The store's SQL schema and its migrations, and how to tell a store file from anything else.

A database carries its schema version in SQLite's `PRAGMA user_version`. Migrations run in
order inside the caller's write transaction, so a migration interrupted halfway leaves the file
at its old version, not at some version in between.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable

from svtr_label.errors import StoreError

SCHEMA_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Statement by statement: executescript would COMMIT the migration's transaction midway."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    _run_script(
        conn,
        """
        CREATE TABLE images (
            id INTEGER PRIMARY KEY,
            sha256 TEXT UNIQUE,
            ref TEXT,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            state TEXT NOT NULL DEFAULT 'unreviewed',
            ls_task_id INTEGER,
            added_at TEXT NOT NULL
        );
        CREATE INDEX images_ref ON images(ref);
        CREATE TABLE predictions (
            id INTEGER PRIMARY KEY,
            image_id INTEGER NOT NULL REFERENCES images(id),
            model_version TEXT NOT NULL,
            page TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (image_id, model_version)
        );
        CREATE TABLE edits (
            id INTEGER PRIMARY KEY,
            image_id INTEGER NOT NULL REFERENCES images(id),
            region_id TEXT,
            op TEXT NOT NULL,
            before TEXT,
            after TEXT,
            who TEXT NOT NULL,
            at TEXT NOT NULL,
            base_version TEXT NOT NULL DEFAULT '',
            annotation_id INTEGER,
            undone INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX edits_image ON edits(image_id, id);
        CREATE TABLE ls_annotations (
            annotation_id INTEGER PRIMARY KEY,
            task_id INTEGER,
            image_id INTEGER,
            updated_at TEXT NOT NULL,
            who TEXT,
            regions TEXT,
            deleted INTEGER NOT NULL DEFAULT 0
        );
        """
    )


# MIGRATIONS[n] takes a database at user_version n to n + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_0_to_1]


def schema_version(conn: sqlite3.Connection) -> int:
    """The schema version the database is at (0 for a new, empty file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, name: str) -> None:
    """Bring the database to SCHEMA_VERSION. Call inside a write transaction; `name` (the file)
    is for the error raised when the database is newer than this code."""
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise StoreError(f"{name}: schema version {version} is newer than this svtr-label ({SCHEMA_VERSION}); upgrade svtr-label")
    for step in MIGRATIONS[version:]:
        step(conn)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def is_store_file(path: str | os.PathLike) -> bool:
    """True when the file is an SQLite database (a store), False for anything else or no file."""
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == SQLITE_MAGIC
    except OSError:
        return False
