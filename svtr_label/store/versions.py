"""What lets several reviewers share one store file, as SQL on a connection the caller holds in a
write transaction: region versions, the store's revision, the per-reviewer redo order, and the
StaleEdit that names who changed a line. The rules (which edits overlap) are in `editlog`.

Every region has a version that each change to it raises (an edit, an undo, a redo): an edit made
on a view of an older version is stale. The check and the write share one BEGIN IMMEDIATE
transaction, so two processes cannot both pass the check on the same version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from svtr_label.core.page import Region
from svtr_label.errors import StaleEdit
from svtr_label.store.editlog import Edit, EditOp, blocking_edit, touched_regions
from svtr_label.store.rows import edit_from_row


@dataclass(frozen=True)
class RegionVersion:
    """A region's version (0: the untouched prediction) and who made its last change, when."""

    version: int
    who: str
    at: str


UNTOUCHED = RegionVersion(0, "", "")


def region_version(conn: sqlite3.Connection, image_id: int, region_id: str) -> RegionVersion:
    row = conn.execute("SELECT version, who, at FROM region_versions WHERE image_id = ? AND region_id = ?", (image_id, region_id)).fetchone()
    return UNTOUCHED if row is None else RegionVersion(int(row[0]), str(row[1]), str(row[2]))


def stored_versions(conn: sqlite3.Connection, image_id: int) -> dict[str, int]:
    """The versions of the image's regions that ever changed (others are at 0)."""
    return {str(r[0]): int(r[1]) for r in conn.execute("SELECT region_id, version FROM region_versions WHERE image_id = ?", (image_id,))}


def bump_versions(conn: sqlite3.Connection, image_id: int, region_ids: Iterable[str], who: str, at: str) -> None:
    conn.executemany(
        "INSERT INTO region_versions (image_id, region_id, version, who, at) VALUES (?, ?, 1, ?, ?)"
        " ON CONFLICT (image_id, region_id) DO UPDATE SET version = version + 1, who = excluded.who, at = excluded.at",
        [(image_id, rid, who or "", at) for rid in sorted(region_ids)],
    )


def revision(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT revision FROM store_revision").fetchone()[0])


def bump_revision(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE store_revision SET revision = revision + 1")


def clear_redo(conn: sqlite3.Connection, image_id: int, who: str) -> None:
    """A new edit ends the reviewer's redo on this image, as in any editor."""
    conn.execute("UPDATE edits SET undo_seq = NULL WHERE image_id = ? AND who = ? AND undo_seq IS NOT NULL", (image_id, who or ""))


def to_undo(conn: sqlite3.Connection, image_id: int, who: str | None) -> Edit | None:
    """`who`'s latest live edit of the image (None: anyone's latest)."""
    mine = "" if who is None else " AND who = ?"
    row = conn.execute(f"SELECT * FROM edits WHERE image_id = ? AND undone = 0{mine} ORDER BY id DESC LIMIT 1",
                       (image_id,) if who is None else (image_id, who)).fetchone()
    return None if row is None else edit_from_row(row)


def to_redo(conn: sqlite3.Connection, image_id: int, who: str) -> Edit | None:
    """The edit `who` undid last on the image, unless a new edit of theirs ended their redo."""
    row = conn.execute("SELECT * FROM edits WHERE image_id = ? AND who = ? AND undone = 1 AND undo_seq IS NOT NULL"
                       " ORDER BY undo_seq DESC LIMIT 1", (image_id, who)).fetchone()
    return None if row is None else edit_from_row(row)


def refusal(conn: sqlite3.Connection, edit: Edit, action: str, regions_now: Callable[[], Iterable[Region]]) -> StaleEdit | None:
    """The StaleEdit when another reviewer's later live edit changed what `edit` changed (None:
    nobody's): the log replays in order, so undoing or redoing `edit` would silently go under or
    over their work. `regions_now` gives the page's regions, read only for the error."""
    later = [edit_from_row(r) for r in conn.execute("SELECT * FROM edits WHERE image_id = ? AND id > ? AND undone = 0 ORDER BY id",
                                                    (edit.image_id, edit.id))]
    other = blocking_edit(edit, later)
    if other is None:
        return None
    shared = sorted(touched_regions(edit) & touched_regions(other))
    region_id = shared[0] if shared else None  # None: the review state
    thing = f"line {region_id!r}" if region_id is not None else "the review state"
    whose = f"{edit.who}'s" if edit.who else "the"
    current = next((r for r in regions_now() if r.id == region_id), None) if region_id is not None else None
    version = region_version(conn, edit.image_id, region_id).version if region_id is not None else 0
    return stale(f"image {edit.image_id}: cannot {action} {whose} {edit.op} of {thing}", edit.image_id, region_id, current,
                 RegionVersion(version, other.who, other.at))


def flip(conn: sqlite3.Connection, edit: Edit, undone: bool, by: str, at: str) -> None:
    """Take an edit out of the log (undo: it joins its author's redo order, newest highest) or put
    it back (redo), with what that implies: the image's state, the versions of its regions."""
    seq = None
    if undone:
        seq = int(conn.execute("SELECT COALESCE(MAX(undo_seq), 0) + 1 FROM edits WHERE image_id = ?", (edit.image_id,)).fetchone()[0])
    conn.execute("UPDATE edits SET undone = ?, undo_seq = ? WHERE id = ?", (int(undone), seq, edit.id))
    if edit.op == EditOp.SET_STATE:
        conn.execute("UPDATE images SET state = ? WHERE id = ?", (edit.before if undone else edit.after, edit.image_id))
    bump_versions(conn, edit.image_id, touched_regions(edit), by, at)


def stale(what: str, image_id: int, region_id: str | None, current: Region | None, now: RegionVersion) -> StaleEdit:
    """The StaleEdit for `what`, naming who changed the region last and when, and what to do."""
    by = f"{now.who or 'someone'} changed it at {now.at}" if now.at else "it changed"
    return StaleEdit(f"{what}: reload the line: {by}", image_id=image_id, region_id=region_id, current=current,
                     by=now.who, at=now.at, version=now.version)
