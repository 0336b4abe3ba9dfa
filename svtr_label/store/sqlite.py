"""The corrections store: one SQLite file holding images, predictions per model_version, every
human edit with its history, and review state.

Corrections are kept as an edit log, not as a rewritten page: the current page of an image is
its base prediction with the edits replayed in order. That gives history (who, when, before,
after) and undo for free, and a new model run never overwrites what a reviewer fixed.

Every public write is one transaction (BEGIN IMMEDIATE ... COMMIT) on a WAL database, so a
killed process loses nothing committed and never leaves half an edit.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from svtr_label.errors import RefError, StoreError
from svtr_label.core.geometry import as_points
from svtr_label.core.images import read_image, sha256_bytes
from svtr_label.labelstudio.format import LabelConfig, image_size_of, page_to_results, recommended_config, results_to_regions
from svtr_label.core.page import IGNORE_TEXT, Page, Region
from svtr_label.labelstudio.refs import document_root, resolve_local, resolve_local_files, served_remotely

SCHEMA_VERSION = 1
IMAGE_STATES = ("unreviewed", "in_progress", "reviewed")
SQLITE_MAGIC = b"SQLite format 3\x00"



def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _utc(stamp: str | None) -> str:
    """Label Studio timestamps to one comparable form (UTC ISO); unparsable ones kept as is."""
    if not stamp:
        return ""
    try:
        dt = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return str(stamp)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


# --- schema and migrations -------------------------------------------------------------------


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


def is_store_file(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == SQLITE_MAGIC
    except OSError:
        return False


# --- rows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    """One image as a browser lists it."""

    id: int
    ref: str | None
    sha256: str | None
    width: int
    height: int
    state: str
    n_lines: int
    min_score: float | None
    model_versions: tuple[str, ...]
    n_edits: int
    ls_task_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "model_versions": list(self.model_versions)}


@dataclass(frozen=True)
class Edit:
    id: int
    image_id: int
    region_id: str | None
    op: str
    before: Any
    after: Any
    who: str
    at: str
    undone: bool


# --- the store -------------------------------------------------------------------------------


class Store:
    """The corrections store. Thread-safe: one connection, one lock."""

    def __init__(self, path: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
        self.path = str(path)
        # Where `/data/local-files/?d=` refs resolve (None: LOCAL_FILES_DOCUMENT_ROOT, else cwd).
        self.root = Path(root) if root else None
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed edit survives power loss, not only a killed process.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; taken immediately so concurrent writers queue instead of failing."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _migrate(self) -> None:
        if self.schema_version == SCHEMA_VERSION:  # the usual case: no write lock needed to open
            return
        with self._tx() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path}: schema version {version} is newer than this svtr-label ({SCHEMA_VERSION}); upgrade svtr-label")
            for step in MIGRATIONS[version:]:
                step(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    # -- images and predictions ----------------------------------------------------------------

    def add_page(self, page: Page, image_ref: str | None = None) -> int:
        """Store a prediction (under page.model_version); returns the image id (upsert by sha256)."""
        with self._tx() as conn:
            image_id = self._upsert_image(conn, page.sha256 or None, image_ref or page.source or None, page.width, page.height)
            self._put_prediction(conn, image_id, page)
        return image_id

    def _upsert_image(self, conn: sqlite3.Connection, sha256: str | None, ref: str | None, width: int, height: int, task_id: int | None = None) -> int:
        row = None
        if sha256:
            row = conn.execute("SELECT id, sha256 FROM images WHERE sha256 = ?", (sha256,)).fetchone()
        if row is None and ref:
            # An image first seen without its bytes (a Label Studio task) is matched by its ref.
            row = conn.execute(
                "SELECT id, sha256 FROM images WHERE ref = ? AND (? IS NULL OR sha256 IS NULL OR sha256 = ?) ORDER BY id LIMIT 1", (ref, sha256, sha256)
            ).fetchone()
        if row is None:
            cur = conn.execute(
                "INSERT INTO images (sha256, ref, width, height, ls_task_id, added_at) VALUES (?, ?, ?, ?, ?, ?)",
                (sha256, ref, width, height, task_id, _now()),
            )
            return int(cur.lastrowid)
        conn.execute(
            "UPDATE images SET sha256 = COALESCE(sha256, ?), ref = COALESCE(?, ref), width = ?, height = ?,"
            " ls_task_id = COALESCE(?, ls_task_id) WHERE id = ?",
            (sha256, ref, width, height, task_id, row["id"]),
        )
        return int(row["id"])

    def _put_prediction(self, conn: sqlite3.Connection, image_id: int, page: Page) -> None:
        # REPLACE gives the row a new id: the highest id is the latest prediction.
        conn.execute(
            "INSERT OR REPLACE INTO predictions (image_id, model_version, page, created_at) VALUES (?, ?, ?, ?)",
            (image_id, page.model_version, json.dumps(page.to_dict(), ensure_ascii=False, sort_keys=True), _now()),
        )

    def _image_row(self, image_id: int) -> sqlite3.Row:
        row = self._conn.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            raise StoreError(f"no image with id {image_id} in {self.path}")
        return row

    def get_image(self, image_id: int) -> ImageInfo:
        with self._lock:
            return self._info(self._image_row(image_id))

    def find_image(self, sha256: str | None = None, ref: str | None = None) -> int | None:
        with self._lock:
            for col, value in (("sha256", sha256), ("ref", ref)):
                if value:
                    row = self._conn.execute(f"SELECT id FROM images WHERE {col} = ?", (value,)).fetchone()
                    if row:
                        return int(row[0])
        return None

    def image_ids(self) -> list[int]:
        with self._lock:
            return [int(r[0]) for r in self._conn.execute("SELECT id FROM images ORDER BY id")]

    def images(self, state: str | None = None, max_score: float | None = None, sort: str = "id") -> list[ImageInfo]:
        """Images for a browser: filter by review state or by lowest line score; sort by 'id' or 'score'."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM images ORDER BY id").fetchall()
            infos = [self._info(r) for r in rows]
        if state is not None:
            infos = [i for i in infos if i.state == state]
        if max_score is not None:
            infos = [i for i in infos if i.min_score is not None and i.min_score <= max_score]
        if sort == "score":
            infos.sort(key=lambda i: (i.min_score if i.min_score is not None else 2.0, i.id))
        return infos

    def _info(self, row: sqlite3.Row) -> ImageInfo:
        page = self._current(row)
        scores = [r.score for r in page.regions if r.score is not None]
        versions = [r[0] for r in self._conn.execute("SELECT model_version FROM predictions WHERE image_id = ? ORDER BY id", (row["id"],))]
        n_edits = self._conn.execute("SELECT COUNT(*) FROM edits WHERE image_id = ? AND undone = 0 AND op != 'set_state'", (row["id"],)).fetchone()[0]
        return ImageInfo(
            id=int(row["id"]), ref=row["ref"], sha256=row["sha256"], width=int(row["width"]), height=int(row["height"]),
            state=row["state"], n_lines=len(page.regions), min_score=min(scores) if scores else None,
            model_versions=tuple(versions), n_edits=int(n_edits), ls_task_id=row["ls_task_id"],
        )

    def predictions(self, image_id: int) -> dict[str, Page]:
        """Every stored prediction of an image, by model_version (oldest first)."""
        with self._lock:
            rows = self._conn.execute("SELECT model_version, page FROM predictions WHERE image_id = ? ORDER BY id", (image_id,)).fetchall()
        return {r[0]: Page.from_dict(json.loads(r[1])) for r in rows}

    # -- current page: prediction + edits ------------------------------------------------------

    def current_page(self, image_id: int, model_version: str | None = None) -> Page:
        """The page as reviewed: corrections replayed over the prediction they were made on.

        With `model_version`, that prediction is the base; edits made on another version's
        regions are not applied to it (region ids are per prediction).
        """
        with self._lock:
            return self._current(self._image_row(image_id), model_version)

    def _current(self, row: sqlite3.Row, model_version: str | None = None) -> Page:
        base_version = self._base_version(int(row["id"]))
        if model_version is not None and base_version is not None and model_version != base_version:
            return self._prediction(row, model_version)
        page = self._prediction(row, model_version if model_version is not None else base_version)
        regions = {r.id: r for r in page.regions}
        for edit in self._live_edits(int(row["id"])):
            regions = _replay(regions, edit)
        return page.with_(regions=tuple(regions.values()))

    def _base_version(self, image_id: int) -> str | None:
        """The version the image's edits were made on: pinned by its first live edit."""
        r = self._conn.execute("SELECT base_version FROM edits WHERE image_id = ? AND undone = 0 ORDER BY id LIMIT 1", (image_id,)).fetchone()
        return None if r is None else str(r[0])

    def _prediction(self, row: sqlite3.Row, model_version: str | None) -> Page:
        q = "SELECT page FROM predictions WHERE image_id = ?"
        args: tuple = (row["id"],)
        if model_version is not None:
            q, args = q + " AND model_version = ?", (row["id"], model_version)
        found = self._conn.execute(q + " ORDER BY id DESC LIMIT 1", args).fetchone()
        if found is not None:
            return Page.from_dict(json.loads(found[0]))
        if model_version:
            raise StoreError(f"image {row['id']} has no prediction of model_version {model_version!r}")
        return Page(width=int(row["width"]), height=int(row["height"]), sha256=row["sha256"] or "", source=row["ref"] or "")

    def _live_edits(self, image_id: int) -> list[sqlite3.Row]:
        return self._conn.execute("SELECT * FROM edits WHERE image_id = ? AND undone = 0 AND op != 'set_state' ORDER BY id", (image_id,)).fetchall()

    def region_states(self, image_id: int) -> dict[str, str]:
        """Review state per region: 'accepted' (confirmed as predicted) or 'corrected' (edited)."""
        states: dict[str, str] = {}
        with self._lock:
            for edit in self._live_edits(image_id):
                if edit["op"] == "replace":
                    states = {r["id"]: "corrected" for r in json.loads(edit["after"] or "[]")}
                elif edit["op"] == "delete_region":
                    states.pop(edit["region_id"], None)
                else:
                    states[edit["region_id"]] = "accepted" if edit["op"] == "accept_region" else "corrected"
        return states

    def is_corrected(self, image_id: int) -> bool:
        """True when a person touched the image: an edit, or the image marked reviewed."""
        info = self.get_image(image_id)
        return info.n_edits > 0 or info.state == "reviewed"

    # -- edits ---------------------------------------------------------------------------------

    def set_text(self, image_id: int, region_id: str, text: str, who: str = "", score: float | None = None) -> None:
        """Set a line's text; `score` too when the text came from the recognizer (a re-read)."""
        def change(r: Region) -> Region:
            return r.with_(text=str(text)) if score is None else r.with_(text=str(text), score=float(score))

        self._edit_region(image_id, region_id, "set_text", change, who)

    def mark_illegible(self, image_id: int, region_id: str, who: str = "") -> None:
        self._edit_region(image_id, region_id, "mark_illegible", lambda r: r.with_(text=IGNORE_TEXT), who)

    def set_points(self, image_id: int, region_id: str, points: Sequence[Sequence[float]], who: str = "") -> None:
        self._edit_region(image_id, region_id, "set_points", lambda r: r.with_(points=tuple(as_points(points))), who)

    def accept_region(self, image_id: int, region_id: str, who: str = "") -> None:
        self._edit_region(image_id, region_id, "accept_region", lambda r: r, who)

    def delete_region(self, image_id: int, region_id: str, who: str = "") -> None:
        self._edit_region(image_id, region_id, "delete_region", lambda r: None, who)

    def add_region(self, image_id: int, region: Region, who: str = "") -> None:
        with self._tx() as conn:
            row = self._image_row(image_id)
            if region.id in {r.id for r in self._current(row).regions}:
                raise StoreError(f"image {image_id} already has a region {region.id!r}")
            self._record(conn, image_id, region.id, "add_region", None, region.to_dict(), who)

    def _edit_region(self, image_id: int, region_id: str, op: str, change: Callable[[Region], Region | None], who: str) -> None:
        with self._tx() as conn:
            regions = {r.id: r for r in self._current(self._image_row(image_id)).regions}
            if region_id not in regions:
                raise StoreError(f"image {image_id} has no region {region_id!r}")
            before = regions[region_id]
            after = change(before)
            self._record(conn, image_id, region_id, op, before.to_dict(), None if after is None else after.to_dict(), who)

    def _record(self, conn: sqlite3.Connection, image_id: int, region_id: str | None, op: str, before: Any, after: Any,
                who: str, annotation_id: int | None = None) -> int:
        base = self._base_version(image_id)
        if base is None:  # the first edit pins the prediction it was made on
            latest = conn.execute("SELECT model_version FROM predictions WHERE image_id = ? ORDER BY id DESC LIMIT 1", (image_id,)).fetchone()
            base = latest[0] if latest else ""
        cur = conn.execute(
            "INSERT INTO edits (image_id, region_id, op, before, after, who, at, base_version, annotation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (image_id, region_id, op, _dump(before), _dump(after), who or "", _now(), base, annotation_id),
        )
        if op != "set_state":
            # Editing a page starts its review, unless it is already further along.
            conn.execute("UPDATE images SET state = 'in_progress' WHERE id = ? AND state = 'unreviewed'", (image_id,))
        return int(cur.lastrowid)

    def set_image_state(self, image_id: int, state: str, who: str = "") -> None:
        if state not in IMAGE_STATES:
            raise StoreError(f"unknown review state {state!r}: one of {', '.join(IMAGE_STATES)}")
        with self._tx() as conn:
            before = self._image_row(image_id)["state"]
            self._record(conn, image_id, None, "set_state", before, state, who)
            conn.execute("UPDATE images SET state = ? WHERE id = ?", (state, image_id))

    def undo(self, image_id: int) -> Edit | None:
        """Revert the image's last live edit; returns it (None when there is nothing to undo)."""
        with self._tx() as conn:
            row = conn.execute("SELECT * FROM edits WHERE image_id = ? AND undone = 0 ORDER BY id DESC LIMIT 1", (image_id,)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE edits SET undone = 1 WHERE id = ?", (row["id"],))
            if row["op"] == "set_state":
                conn.execute("UPDATE images SET state = ? WHERE id = ?", (json.loads(row["before"]), image_id))
            return _edit(row)

    def history(self, image_id: int) -> list[Edit]:
        """Every edit of an image, oldest first, undone ones included (flagged)."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM edits WHERE image_id = ? ORDER BY id", (image_id,)).fetchall()
        return [_edit(r) for r in rows]

    def reviewers(self, image_id: int) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT DISTINCT who FROM edits WHERE image_id = ? AND undone = 0 AND who != '' ORDER BY who", (image_id,))
            return [r[0] for r in rows]

    # -- Label Studio --------------------------------------------------------------------------

    def import_label_studio_tasks(self, tasks: list[dict[str, Any]], who: str = "label-studio") -> list[int]:
        """Import a Label Studio JSON export: predictions as predictions, the latest annotation
        of each task as its corrections. One transaction for the whole file. Returns image ids."""
        ids = []
        with self._tx() as conn:
            for task in tasks:
                image_id = self._task_image(conn, task)
                for pred in task.get("predictions") or []:
                    self._put_prediction(conn, image_id, self._results_page(conn, image_id, pred.get("result") or [], str(pred.get("model_version") or "")))
                for ann in task.get("annotations") or []:
                    if not ann.get("was_cancelled"):
                        self._apply_annotation(conn, image_id, task.get("id"), ann, _annotator(ann) or who)
                ids.append(image_id)
        return ids

    def apply_webhook(self, payload: dict[str, Any]) -> bool:
        """Apply a Label Studio webhook body; False when it changed nothing (a repeat or an
        event older than what is stored)."""
        action = str(payload.get("action") or "")
        if action == "ANNOTATIONS_DELETED":  # Label Studio's bulk form: {"annotations": [{"id": ...}]}
            with self._tx() as conn:
                changed = [self._delete_annotation(conn, {}, a) for a in payload.get("annotations") or [] if a.get("id") is not None]
            return any(changed)
        task, ann = payload.get("task") or {}, payload.get("annotation") or {}
        if action not in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED") or not ann:
            return False
        with self._tx() as conn:
            if action == "ANNOTATION_DELETED":
                return self._delete_annotation(conn, task, ann)
            if not task.get("data"):
                raise StoreError(f"webhook {action} for annotation {ann.get('id')} carries no task data")
            # Webhook tasks carry no results: the event's own annotation holds the image size.
            # Its refs come from the network, so only files inside the document root are read.
            image_id = self._task_image(conn, {**task, "annotations": [ann]}, confined=True)
            return self._apply_annotation(conn, image_id, task.get("id"), ann, _annotator(ann) or "label-studio")

    def _task_image(self, conn: sqlite3.Connection, task: dict[str, Any], confined: bool = False) -> int:
        data = task.get("data") or {}
        ref = _image_ref_of(data)
        if ref is None:
            raise StoreError(f"task {task.get('id')} has no image in data {sorted(data)}")
        if confined:
            _refuse_foreign_ref(ref, self.root, task.get("id"))
        size = _task_size(task)
        path = resolve_local(ref, self.root, confined=confined)
        sha = sha256_bytes(path.read_bytes()) if path is not None else None
        if size is None and path is not None:
            img = read_image(path)
            size = (img.width, img.height)
        if size is None:
            raise StoreError(f"task {task.get('id')}: image {ref} is not readable here and no result carries its size")
        return self._upsert_image(conn, sha, ref, size[0], size[1], task.get("id"))

    def _results_page(self, conn: sqlite3.Connection, image_id: int, results: list[dict[str, Any]], model_version: str) -> Page:
        row = self._image_row(image_id)
        regions = results_to_regions(results, row["width"], row["height"])
        return Page(width=row["width"], height=row["height"], sha256=row["sha256"] or "", regions=tuple(regions),
                    model_version=model_version, source=row["ref"] or "")

    def _apply_annotation(self, conn: sqlite3.Connection, image_id: int, task_id: Any, ann: dict[str, Any], who: str) -> bool:
        ann_id = ann.get("id")
        stamp = _utc(ann.get("updated_at") or ann.get("created_at"))
        regions = [r.to_dict() for r in self._results_page(conn, image_id, ann.get("result") or [], "").regions]
        if ann_id is None:  # an export without ids: apply as it comes
            self._replace(conn, image_id, regions, who, None)
            return True
        old = conn.execute("SELECT * FROM ls_annotations WHERE annotation_id = ?", (ann_id,)).fetchone()
        if old is not None and (old["deleted"] or old["updated_at"] >= stamp):
            return False  # a repeat, an older version, or an annotation deleted since
        conn.execute(
            "INSERT OR REPLACE INTO ls_annotations (annotation_id, task_id, image_id, updated_at, who, regions, deleted) VALUES (?, ?, ?, ?, ?, ?, 0)",
            (ann_id, task_id, image_id, stamp, who, json.dumps(regions, ensure_ascii=False)),
        )
        winner = self._winning_annotation(conn, image_id)
        if winner is None or winner["annotation_id"] != ann_id:
            return True  # stored, but a newer annotation of the task still wins
        self._replace(conn, image_id, regions, who, ann_id)
        conn.execute("UPDATE images SET state = 'reviewed' WHERE id = ?", (image_id,))
        return True

    def _delete_annotation(self, conn: sqlite3.Connection, task: dict[str, Any], ann: dict[str, Any]) -> bool:
        ann_id = ann.get("id")
        old = conn.execute("SELECT * FROM ls_annotations WHERE annotation_id = ?", (ann_id,)).fetchone()
        if old is None:  # deleted before we saw it: a tombstone stops its late CREATED event
            conn.execute("INSERT INTO ls_annotations (annotation_id, task_id, updated_at, deleted) VALUES (?, ?, '', 1)", (ann_id, task.get("id")))
            return True
        if old["deleted"]:
            return False
        image_id = int(old["image_id"])
        was_winner = (self._winning_annotation(conn, image_id) or {"annotation_id": None})["annotation_id"] == ann_id
        conn.execute("UPDATE ls_annotations SET deleted = 1 WHERE annotation_id = ?", (ann_id,))
        if was_winner:
            nxt = self._winning_annotation(conn, image_id)
            if nxt is not None:
                self._replace(conn, image_id, json.loads(nxt["regions"]), nxt["who"] or "label-studio", int(nxt["annotation_id"]))
            else:  # no annotation left: back to the page as it was before the first one came
                applied = conn.execute(
                    "SELECT before FROM edits WHERE image_id = ? AND annotation_id IS NOT NULL AND op = 'replace' AND undone = 0 ORDER BY id LIMIT 1",
                    (image_id,),
                ).fetchone()
                self._replace(conn, image_id, json.loads(applied[0]) if applied else [], _annotator(ann) or "label-studio", ann_id, op="replace")
                conn.execute("UPDATE images SET state = 'in_progress' WHERE id = ?", (image_id,))
        return True

    def _winning_annotation(self, conn: sqlite3.Connection, image_id: int) -> sqlite3.Row | None:
        return conn.execute(
            "SELECT * FROM ls_annotations WHERE image_id = ? AND deleted = 0 ORDER BY updated_at DESC, annotation_id DESC LIMIT 1", (image_id,)
        ).fetchone()

    def _replace(self, conn: sqlite3.Connection, image_id: int, regions: list[dict[str, Any]], who: str, ann_id: int | None, op: str = "replace") -> None:
        before = [r.to_dict() for r in self._current(self._image_row(image_id)).regions]
        self._record(conn, image_id, None, op, before, regions, who, ann_id)

    def to_label_studio_tasks(self, config: LabelConfig | None = None, image_ids: Sequence[int] | None = None,
                              include_predictions: bool = True) -> list[dict[str, Any]]:
        """Tasks to re-import: the corrected page as an annotation, predictions as predictions."""
        config = config or LabelConfig.parse(recommended_config())
        tasks = []
        for image_id in image_ids if image_ids is not None else self.image_ids():
            tasks.append(self._task(image_id, config, include_predictions))
        return tasks

    def _task(self, image_id: int, config: LabelConfig, include_predictions: bool) -> dict[str, Any]:
        info = self.get_image(image_id)
        task: dict[str, Any] = {"data": {config.data_key: info.ref or ""}}
        if info.ls_task_id is not None:
            task["id"] = info.ls_task_id
        if include_predictions:
            task["predictions"] = [
                {"model_version": v, "score": round(p.score, 6), "result": page_to_results(p, config)} for v, p in self.predictions(image_id).items()
            ]
        if self.is_corrected(image_id):
            page = self.current_page(image_id)
            reviewers = self.reviewers(image_id)
            task["annotations"] = [{"result": page_to_results(page, config), "completed_by_name": ", ".join(reviewers)}]
        return task


# --- helpers ---------------------------------------------------------------------------------


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _edit(row: sqlite3.Row) -> Edit:
    return Edit(
        id=int(row["id"]), image_id=int(row["image_id"]), region_id=row["region_id"], op=row["op"],
        before=None if row["before"] is None else json.loads(row["before"]),
        after=None if row["after"] is None else json.loads(row["after"]),
        who=row["who"], at=row["at"], undone=bool(row["undone"]),
    )


def _replay(regions: dict[str, Region], edit: sqlite3.Row) -> dict[str, Region]:
    after = None if edit["after"] is None else json.loads(edit["after"])
    if edit["op"] == "replace":
        return {r["id"]: Region.from_dict(r) for r in after or []}
    out = dict(regions)
    if after is None:
        out.pop(edit["region_id"], None)
    else:
        out[edit["region_id"]] = Region.from_dict(after)
    return out


def _annotator(ann: dict[str, Any]) -> str:
    who = ann.get("completed_by")
    if isinstance(who, dict):
        return str(who.get("email") or who.get("username") or who.get("id") or "")
    return str(who) if who not in (None, "") else str(ann.get("completed_by_name") or "")


def _refuse_foreign_ref(ref: str, root: Path | None, task_id: Any) -> None:
    """Refs from the network (webhooks) must be what Label Studio sends: a bare path, or a
    local-files path leaving the document root, would make exports and widgets read local files."""
    if not served_remotely(ref):
        raise StoreError(f"task {task_id}: image {ref!r} is not a Label Studio URL; refused")
    try:
        resolve_local_files(ref, document_root(root))
    except RefError as exc:
        raise StoreError(f"task {task_id}: {exc}") from None


def _image_ref_of(data: dict[str, Any]) -> str | None:
    """The task's image: data.image, else the first string value that looks like an image ref."""
    if isinstance(data.get("image"), str):
        return data["image"]
    for value in data.values():
        if isinstance(value, str) and (value.startswith(("/", "http", "s3://", "gs://")) or "." in value):
            return value
    return None


def _task_size(task: dict[str, Any]) -> tuple[int, int] | None:
    for group in ("annotations", "predictions"):
        for item in task.get(group) or []:
            size = image_size_of(item.get("result") or [])
            if size:
                return size
    return None


def open_input(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Store:
    """A store file as is, or a Label Studio JSON export (or predict tasks file) loaded into memory."""
    p = Path(path)
    if not p.exists():
        raise StoreError(f"{p}: no such file")
    if is_store_file(p):
        return Store(p, root=root)
    try:
        tasks = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{p}: neither an svtr-label store nor a Label Studio JSON export ({exc})") from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    store = Store(":memory:", root=root)
    store.import_label_studio_tasks(tasks)
    return store
