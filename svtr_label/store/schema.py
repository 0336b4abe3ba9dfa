"""The store's SQL schema and its migrations, and how to tell a store file from anything else.

A database carries its schema version in SQLite's `PRAGMA user_version`. Migrations run in
order inside the caller's write transaction, so a migration interrupted halfway leaves the file
at its old version, not at some version in between.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable

from svtr_label.errors import StoreError
from svtr_label.store.editlog import EditOp, touched_region_ids

SCHEMA_VERSION = 2
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


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Several reviewers on one store (additive: version 1 rows stay as they are).

    region_versions: per region, a counter every change (edit, undo, redo) raises, with who made
    the last one, so a stale edit is caught and named. edits.undo_seq: the order of a reviewer's
    undos, newest highest; NULL when the edit is live or no longer redoable. store_revision: one
    counter every write transaction raises, for browsers to poll.
    """
    _run_script(
        conn,
        """
        ALTER TABLE edits ADD COLUMN undo_seq INTEGER;
        CREATE INDEX edits_who ON edits(image_id, who, id);
        CREATE TABLE region_versions (
            image_id INTEGER NOT NULL REFERENCES images(id),
            region_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            who TEXT NOT NULL,
            at TEXT NOT NULL,
            PRIMARY KEY (image_id, region_id)
        ) WITHOUT ROWID;
        CREATE TABLE store_revision (
            id INTEGER PRIMARY KEY CHECK (id = 0),
            revision INTEGER NOT NULL
        );
        INSERT INTO store_revision (id, revision) VALUES (0, 0)
        """
    )
    _backfill_region_versions(conn)


def _backfill_region_versions(conn: sqlite3.Connection) -> None:
    """Versions of the regions edited before version 2: one per edit, one more per undo (old
    undos were not recorded as such: the edit's author stands in for who undid it)."""
    versions: dict[tuple[int, str], tuple[int, str, str]] = {}
    rows = conn.execute("SELECT image_id, region_id, op, before, after, who, at, undone FROM edits WHERE op != ? ORDER BY id",
                        (EditOp.SET_STATE.value,))
    for image_id, region_id, op, before, after, who, at, undone in rows:
        for rid in touched_region_ids(op, region_id, _load(before), _load(after)):
            n = versions.get((image_id, rid), (0, "", ""))[0]
            versions[(image_id, rid)] = (n + 1 + int(bool(undone)), who, at)
    conn.executemany("INSERT INTO region_versions (image_id, region_id, version, who, at) VALUES (?, ?, ?, ?, ?)",
                     [(image_id, rid, n, who, at) for (image_id, rid), (n, who, at) in versions.items()])


def _load(text: str | None) -> object:
    return None if text is None else json.loads(text)


# MIGRATIONS[n] takes a database at user_version n to n + 1.
MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_0_to_1, _migrate_1_to_2]


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
