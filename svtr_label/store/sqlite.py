"""The corrections store's SQLite core: images, predictions per model_version, the edit log with
undo and history, review state, and the current page of an image. Nothing here knows Label Studio
(that is `svtr_label.store.sync`).

The edit log's rules (replay, region states, which prediction edits apply to) are pure functions
in `svtr_label.store.editlog`; this module reads the rows they work on and writes new ones.

Every public write is one transaction (BEGIN IMMEDIATE ... COMMIT) on a WAL database, so a
killed process loses nothing committed and never leaves half an edit. Reads that take several
queries run in one read transaction, so they see one snapshot even while another process writes.

Several reviewers (notebooks, JupyterHub users) share one file: every region carries a version
that each change to it raises (`region_versions`); an edit made on an older version is refused
with `StaleEdit` inside the same write transaction that would have written it. Undo and redo are
per reviewer and refuse to go over another reviewer's later change. `revision()` is one counter
every write raises, so a browser can poll it to know when to re-read.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from svtr_label.core.geometry import as_points
from svtr_label.core.wal import connect_wal
from svtr_label.core.page import IGNORE_TEXT, Page, Region
from svtr_label.errors import StoreError
from svtr_label.store import editlog
from svtr_label.store.editlog import IMAGE_STATES, Edit, EditOp, LoggedEdit, RegionState, ReviewState
from svtr_label.store import versions
from svtr_label.store.rows import PredictionRef, by_image, dump, edit_from_row, load_pages, logged_from_row, prediction_ref
from svtr_label.store.schema import SCHEMA_VERSION, migrate, schema_version

_S = TypeVar("_S", bound="SqliteStore")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


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
    # Checked lines of the page (see editlog.region_states): as they came, and changed by a person.
    n_accepted: int = 0
    n_corrected: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "model_versions": list(self.model_versions)}




@dataclass(frozen=True)
class _PagePlan:
    """How an image's page is built: on which stored prediction, with which edits replayed."""

    version: str | None  # the model_version asked for or pinned; None: the latest prediction
    prediction_id: int | None  # None: no such prediction stored
    edits: list[Edit]


def _plan(predictions: Sequence[PredictionRef], log: Sequence[LoggedEdit], requested: str | None) -> _PagePlan:
    version = editlog.shown_version(requested, editlog.base_version(log))
    ids = [pid for pid, v in predictions if version is None or v == version]
    return _PagePlan(version, max(ids) if ids else None, editlog.edits_for(log, requested))


class SqliteStore:
    """The corrections store without Label Studio. Thread-safe: one connection, one lock."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # FULL: a committed edit survives power loss, not only a killed process.
        self._conn = connect_wal(self.path, synchronous="FULL", isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; taken immediately so concurrent writers queue instead of failing."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            changes = self._conn.total_changes
            try:
                yield self._conn
                if self._conn.total_changes != changes:  # a repeated webhook writes nothing: no refresh
                    versions.bump_revision(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """Several reads as one snapshot: a writer in another process cannot slip an edit (pinned
        to a prediction this read has not seen) in between them."""
        with self._lock:
            if self._conn.in_transaction:  # inside a write: that transaction is the snapshot
                yield self._conn
                return
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                if self._conn.in_transaction:  # an error may have rolled it back already
                    self._conn.execute("COMMIT")  # nothing was written: this only ends the snapshot

    def _migrate(self) -> None:
        if self.schema_version == SCHEMA_VERSION:  # the usual case: no write lock needed to open
            return
        with self._tx() as conn:
            migrate(conn, self.path)

    @property
    def schema_version(self) -> int:
        return schema_version(self._conn)

    def revision(self) -> int:
        """A number every write to the store raises (any image, any process): poll it, re-read
        when it moved. One indexed read of one row."""
        with self._lock:
            return versions.revision(self._conn)

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
            return int(cur.lastrowid)  # type: ignore[arg-type]  # set by every INSERT
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
        with self._reading():
            row = self._image_row(image_id)
            predictions, log = self._prediction_refs(image_id), self._log(image_id)
            return _info(row, predictions, log, self._page(row, _plan(predictions, log, None)))

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
        infos = self._all_infos()
        if state is not None:
            infos = [i for i in infos if i.state == state]
        if max_score is not None:
            infos = [i for i in infos if i.min_score is not None and i.min_score <= max_score]
        if sort == "score":
            infos.sort(key=lambda i: (i.min_score if i.min_score is not None else 2.0, i.id))
        return infos

    def _all_infos(self) -> list[ImageInfo]:
        """Every image's ImageInfo from a few bulk queries (not several per image), built by the
        same rules as get_image."""
        with self._reading() as conn:
            rows = conn.execute("SELECT * FROM images ORDER BY id").fetchall()
            predictions = by_image(conn.execute("SELECT image_id, id, model_version FROM predictions ORDER BY id"), prediction_ref)
            logs = by_image(conn.execute("SELECT * FROM edits WHERE undone = 0 ORDER BY id"), logged_from_row)
            plans = {int(r["id"]): _plan(predictions[int(r["id"])], logs[int(r["id"])], None) for r in rows}
            pages = load_pages(conn, [p.prediction_id for p in plans.values() if p.prediction_id is not None])
        return [_info(r, predictions[int(r["id"])], logs[int(r["id"])], _build_page(r, plans[int(r["id"])], pages)) for r in rows]

    def predictions(self, image_id: int) -> dict[str, Page]:
        """Every stored prediction of an image, by model_version (oldest first)."""
        with self._lock:
            rows = self._conn.execute("SELECT model_version, page FROM predictions WHERE image_id = ? ORDER BY id", (image_id,)).fetchall()
        return {r[0]: Page.from_dict(json.loads(r[1])) for r in rows}

    def _prediction_refs(self, image_id: int) -> list[PredictionRef]:
        rows = self._conn.execute("SELECT id, model_version FROM predictions WHERE image_id = ? ORDER BY id", (image_id,))
        return [prediction_ref(r) for r in rows]

    # -- current page: prediction + edits ------------------------------------------------------

    def current_page(self, image_id: int, model_version: str | None = None) -> Page:
        """The page as reviewed: corrections replayed over the prediction they were made on.

        With `model_version`, that prediction is the base; edits made on another version's
        regions are not applied to it (region ids are per prediction).
        """
        with self._reading():
            return self._current(self._image_row(image_id), model_version)

    def _current(self, row: sqlite3.Row, model_version: str | None = None) -> Page:
        image_id = int(row["id"])
        return self._page(row, _plan(self._prediction_refs(image_id), self._log(image_id), model_version))

    def _page(self, row: sqlite3.Row, plan: _PagePlan) -> Page:
        ids = [] if plan.prediction_id is None else [plan.prediction_id]
        return _build_page(row, plan, load_pages(self._conn, ids))

    def _log(self, image_id: int) -> list[LoggedEdit]:
        """The image's live edits, oldest first, state changes included."""
        rows = self._conn.execute("SELECT * FROM edits WHERE image_id = ? AND undone = 0 ORDER BY id", (image_id,))
        return [logged_from_row(r) for r in rows]

    def region_versions(self, image_id: int) -> dict[str, int]:
        """Version per region of the current page (0: the untouched prediction); every edit, undo
        or redo of a region raises it. Pass it back as `expected_version` to refuse stale edits.
        Read it with the page (`page_and_versions`), or before it: versions read after the page
        may already cover a change the page does not show."""
        return self.page_and_versions(image_id)[1]

    def page_and_versions(self, image_id: int) -> tuple[Page, dict[str, int]]:
        """The current page and its regions' versions, from one snapshot."""
        with self._reading() as conn:
            page = self._current(self._image_row(image_id))
            stored = versions.stored_versions(conn, image_id)
        return page, {r.id: stored.get(r.id, 0) for r in page.regions}

    def region_states(self, image_id: int) -> dict[str, str]:
        """Review state of the checked regions: 'accepted' (checked, text as it came) or
        'corrected' (checked, text changed by a person); a region not listed is unchecked."""
        with self._lock:
            log = self._log(image_id)
        return dict(editlog.region_states(logged.edit for logged in log))

    def is_corrected(self, image_id: int) -> bool:
        """True when a person touched the image: an edit, or the image marked reviewed."""
        info = self.get_image(image_id)
        return info.n_edits > 0 or info.state == ReviewState.REVIEWED

    # -- edits ---------------------------------------------------------------------------------

    # Region edits take `expected_version`: the region's version the caller's view was read at
    # (`region_versions`). When given and the region has moved on, StaleEdit is raised and nothing
    # is written. The check runs inside the edit's write transaction: atomic across processes.

    def set_text(self, image_id: int, region_id: str, text: str, who: str = "", score: float | None = None, *,
                 expected_version: int | None = None) -> None:
        """Set a line's text; `score` too when the text came from the recognizer (a re-read)."""
        def change(r: Region) -> Region:
            return r.with_(text=str(text)) if score is None else r.with_(text=str(text), score=float(score))

        self._edit_region(image_id, region_id, EditOp.SET_TEXT, change, who, expected_version)

    def mark_illegible(self, image_id: int, region_id: str, who: str = "", *, expected_version: int | None = None) -> None:
        self._edit_region(image_id, region_id, EditOp.MARK_ILLEGIBLE, lambda r: r.with_(text=IGNORE_TEXT), who, expected_version)

    def set_points(self, image_id: int, region_id: str, points: Sequence[Sequence[float]], who: str = "", *,
                   expected_version: int | None = None) -> None:
        """Move a box; its text is unchecked again until re-read (set_text with a score) or accepted."""
        self._edit_region(image_id, region_id, EditOp.SET_POINTS, lambda r: r.with_(points=tuple(as_points(points))), who, expected_version)

    def accept_region(self, image_id: int, region_id: str, who: str = "", *, expected_version: int | None = None) -> None:
        self._edit_region(image_id, region_id, EditOp.ACCEPT_REGION, lambda r: r, who, expected_version)

    def delete_region(self, image_id: int, region_id: str, who: str = "", *, expected_version: int | None = None) -> None:
        self._edit_region(image_id, region_id, EditOp.DELETE_REGION, lambda r: None, who, expected_version)

    def add_region(self, image_id: int, region: Region, who: str = "") -> None:
        with self._tx() as conn:
            row = self._image_row(image_id)
            if region.id in {r.id for r in self._current(row).regions}:
                raise StoreError(f"image {image_id} already has a region {region.id!r}")
            self._record(conn, image_id, region.id, EditOp.ADD_REGION, None, region.to_dict(), who)

    def _edit_region(self, image_id: int, region_id: str, op: EditOp, change: Callable[[Region], Region | None], who: str,
                     expected_version: int | None) -> None:
        with self._tx() as conn:
            regions = {r.id: r for r in self._current(self._image_row(image_id)).regions}
            if expected_version is not None:
                self._check_version(conn, image_id, region_id, expected_version, regions.get(region_id))
            if region_id not in regions:
                raise StoreError(f"image {image_id} has no region {region_id!r}")
            before = regions[region_id]
            after = change(before)
            self._record(conn, image_id, region_id, op, before.to_dict(), None if after is None else after.to_dict(), who)

    def _check_version(self, conn: sqlite3.Connection, image_id: int, region_id: str, expected: int, current: Region | None) -> None:
        now = versions.region_version(conn, image_id, region_id)
        if now.version != expected:
            what = f"image {image_id}, line {region_id!r}: your view has version {expected}, the store {now.version}"
            raise versions.stale(what, image_id, region_id, current, now)

    def _record(self, conn: sqlite3.Connection, image_id: int, region_id: str | None, op: EditOp, before: Any, after: Any,
                who: str, annotation_id: int | None = None) -> int:
        latest = conn.execute("SELECT model_version FROM predictions WHERE image_id = ? ORDER BY id DESC LIMIT 1", (image_id,)).fetchone()
        base = editlog.version_to_pin(editlog.base_version(self._log(image_id)), latest[0] if latest else None)
        at = _now()
        cur = conn.execute(
            "INSERT INTO edits (image_id, region_id, op, before, after, who, at, base_version, annotation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (image_id, region_id, EditOp(op).value, dump(before), dump(after), who or "", at, base, annotation_id),
        )
        versions.bump_versions(conn, image_id, editlog.touched_region_ids(op, region_id, before, after), who, at)
        versions.clear_redo(conn, image_id, who)
        if op != EditOp.SET_STATE:
            # Editing a page starts its review, unless it is already further along.
            conn.execute("UPDATE images SET state = ? WHERE id = ? AND state = ?",
                         (ReviewState.IN_PROGRESS.value, image_id, ReviewState.UNREVIEWED.value))
        return int(cur.lastrowid)  # type: ignore[arg-type]  # set by every INSERT

    def set_image_state(self, image_id: int, state: str, who: str = "") -> None:
        if state not in IMAGE_STATES:
            raise StoreError(f"unknown review state {state!r}: one of {', '.join(IMAGE_STATES)}")
        with self._tx() as conn:
            before = self._image_row(image_id)["state"]
            self._record(conn, image_id, None, EditOp.SET_STATE, before, ReviewState(state).value, who)
            conn.execute("UPDATE images SET state = ? WHERE id = ?", (ReviewState(state).value, image_id))

    def undo(self, image_id: int, who: str | None = None) -> Edit | None:
        """Undo `who`'s latest live edit of the image (never another reviewer's); returns it, now
        flagged undone (None: nothing of theirs to undo). Raises StaleEdit, changing nothing, when
        another reviewer has changed the same region (or review state) since.

        Without `who`: the image's latest live edit, whoever made it (the single-reviewer undo)."""
        return self._undo_or_redo(image_id, who, undo=True)

    def redo(self, image_id: int, who: str) -> Edit | None:
        """Apply again the edit `who` undid last on this image; returns it (None: nothing to redo,
        or a new edit of theirs since). Raises StaleEdit, changing nothing, when another reviewer
        has changed the same region (or review state) since the edit was made."""
        return self._undo_or_redo(image_id, who, undo=False)

    def _undo_or_redo(self, image_id: int, who: str | None, undo: bool) -> Edit | None:
        with self._tx() as conn:
            edit = versions.to_undo(conn, image_id, who) if undo else versions.to_redo(conn, image_id, str(who))
            if edit is None:
                return None
            refused = versions.refusal(conn, edit, "undo" if undo else "redo", lambda: self._current(self._image_row(image_id)).regions)
            if refused is not None:
                raise refused
            versions.flip(conn, edit, undone=undo, by=edit.who if who is None else who, at=_now())
            return replace(edit, undone=undo)

    def history(self, image_id: int) -> list[Edit]:
        """Every edit of an image, oldest first, undone ones included (flagged)."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM edits WHERE image_id = ? ORDER BY id", (image_id,)).fetchall()
        return [edit_from_row(r) for r in rows]

    def reviewers(self, image_id: int) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT DISTINCT who FROM edits WHERE image_id = ? AND undone = 0 AND who != '' ORDER BY who", (image_id,))
            return [r[0] for r in rows]


def _build_page(row: sqlite3.Row, plan: _PagePlan, pages: Mapping[int, Page]) -> Page:
    """The plan's prediction (an empty page for an image never predicted) with its edits replayed."""
    if plan.prediction_id is not None:
        page = pages[plan.prediction_id]
    elif plan.version:
        raise StoreError(f"image {row['id']} has no prediction of model_version {plan.version!r}")
    else:
        page = Page(width=int(row["width"]), height=int(row["height"]), sha256=row["sha256"] or "", source=row["ref"] or "")
    return editlog.replay(page, plan.edits)


def _info(row: sqlite3.Row, predictions: Sequence[PredictionRef], log: Sequence[LoggedEdit], page: Page) -> ImageInfo:
    scores = [r.score for r in page.regions if r.score is not None]
    on_page = {r.id for r in page.regions}
    states = [s for rid, s in editlog.region_states(logged.edit for logged in log).items() if rid in on_page]
    return ImageInfo(
        id=int(row["id"]), ref=row["ref"], sha256=row["sha256"], width=int(row["width"]), height=int(row["height"]),
        state=ReviewState(row["state"]), n_lines=len(page.regions), min_score=min(scores) if scores else None,
        model_versions=tuple(v for _, v in predictions), n_edits=editlog.count_page_edits(logged.edit for logged in log),
        ls_task_id=row["ls_task_id"], n_accepted=states.count(RegionState.ACCEPTED), n_corrected=states.count(RegionState.CORRECTED),
    )
