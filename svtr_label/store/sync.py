"""Label Studio sync for the corrections store: the only store module that knows Label Studio.

`Store` is the SQLite store plus Label Studio's side: importing a JSON export, applying webhook
events (idempotent, and safe against late or repeated deliveries, through the `ls_annotations`
bookkeeping table), and writing tasks to re-import. It reads Label Studio's JSON through the pure
`svtr_label.labelstudio` modules only (format, refs, payloads): the store never speaks HTTP.

A multi-page task (`data.pages` a list of image refs, results carrying `item_index`) is stored as
one image per page, each under its own ref: exports, evaluations and the widgets see pages, as
they see images. One annotation of such a task is one `ls_annotations` row (keyed by the
annotation id, on the first page's image) whose regions are kept per page image; the task's
annotations all cover the same pages, so the newest one wins on every page at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from svtr_label.core.images import decode_image, sha256_bytes
from svtr_label.core.page import Page
from svtr_label.errors import ImageError, RefError, StoreError
from svtr_label.labelstudio.format import (
    LabelConfig,
    image_size_of,
    item_index_of,
    page_to_results,
    recommended_config,
    results_by_item,
    results_to_regions,
)
from svtr_label.labelstudio.payloads import (
    Annotation,
    Prediction,
    Result,
    Task,
    WebhookEvent,
)
from svtr_label.labelstudio.refs import (
    document_root,
    resolve_local,
    resolve_local_files,
    served_remotely,
)
from svtr_label.settings import ImageLimits
from svtr_label.store.editlog import EditOp, ReviewState
from svtr_label.store.schema import is_store_file
from svtr_label.store.sqlite import SqliteStore

ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED")
DEFAULT_WHO = "label-studio"


class Store(SqliteStore):
    """The corrections store, with Label Studio import, webhooks and export. Thread-safe."""

    def __init__(self, path: str | os.PathLike, root: str | os.PathLike | None = None, limits: ImageLimits = ImageLimits()) -> None:
        # Where `/data/local-files/?d=` refs resolve (None: the current folder; the faces pass LOCAL_FILES_DOCUMENT_ROOT).
        self.root = Path(root) if root else None
        # Files named by tasks are read (hashed, measured) only within these limits: a webhook is
        # unauthenticated by default and must not make the store read a huge file.
        self.limits = limits
        super().__init__(path)

    def import_label_studio_tasks(self, tasks: list[Task], who: str = DEFAULT_WHO) -> list[int]:
        """Import a Label Studio JSON export: predictions as predictions, the latest annotation
        of each task as its corrections. One transaction for the whole file. Returns image ids."""
        ids = []
        with self._tx() as conn:
            for task in tasks:
                pages = self._task_images(conn, task)
                for pred in _prediction_objects(task):
                    version = str(pred.get("model_version") or "")
                    for image_id, results in _per_page(pages, pred.get("result") or []):
                        self._put_prediction(conn, image_id, self._results_page(image_id, results, version))
                for ann in task.get("annotations") or []:
                    if not ann.get("was_cancelled"):
                        self._apply_annotation(conn, pages, task.get("id"), ann, _annotator(ann) or who)
                self._forget_deleted_annotations(conn, task)
                ids.extend(pages.image_ids)
        return ids

    def task_ids(self) -> set[int]:
        """Label Studio task ids the store holds images or annotations of."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT ls_task_id FROM images WHERE ls_task_id IS NOT NULL UNION SELECT task_id FROM ls_annotations WHERE task_id IS NOT NULL"
            ).fetchall()
        return {int(r[0]) for r in rows}

    def forget_deleted_annotations(self, tasks: Sequence[Task]) -> int:
        """Mark deleted every stored annotation of these tasks that they no longer list (a pull of
        tasks whose annotations were all deleted in Label Studio). Returns how many were deleted."""
        with self._tx() as conn:
            return sum(self._forget_deleted_annotations(conn, task) for task in tasks)

    def _forget_deleted_annotations(self, conn: sqlite3.Connection, task: Task) -> int:
        """A task as Label Studio lists it now holds all its annotations: those stored but not listed
        were deleted there (an import or pull must not bring them back into exports)."""
        task_id = task.get("id")
        if not isinstance(task_id, int):
            return 0  # an export without ids cannot say what is gone
        listed = {a.get("id") for a in task.get("annotations") or [] if isinstance(a, dict)}
        stored = conn.execute("SELECT annotation_id FROM ls_annotations WHERE task_id = ? AND deleted = 0", (task_id,)).fetchall()
        gone = [int(r[0]) for r in stored if r[0] not in listed]
        for ann_id in gone:
            self._delete_annotation(conn, task, {"id": ann_id})
        return len(gone)

    def apply_webhook(self, payload: WebhookEvent) -> bool:
        """Apply a Label Studio webhook body; False when it changed nothing (a repeat or an
        event older than what is stored)."""
        action = str(payload.get("action") or "")
        if action == "ANNOTATIONS_DELETED":  # Label Studio's bulk form: {"annotations": [{"id": ...}]}
            with self._tx() as conn:
                changed = [self._delete_annotation(conn, {}, a) for a in payload.get("annotations") or [] if a.get("id") is not None]
            return any(changed)
        task, ann = payload.get("task") or {}, payload.get("annotation") or {}
        if action not in ANNOTATION_EVENTS or not ann:
            return False
        with self._tx() as conn:
            if action == "ANNOTATION_DELETED":
                return self._delete_annotation(conn, task, ann)
            if not task.get("data"):
                raise StoreError(f"webhook {action} for annotation {ann.get('id')} carries no task data")
            # Webhook tasks carry no results: the event's own annotation holds the image size.
            # Its refs come from the network, so only files inside the document root are read.
            with_size: Task = {**task, "annotations": [ann]}
            pages = self._task_images(conn, with_size, confined=True)
            return self._apply_annotation(conn, pages, task.get("id"), ann, _annotator(ann) or DEFAULT_WHO)

    def _task_images(self, conn: sqlite3.Connection, task: Task, confined: bool = False) -> "_TaskPages":
        """The store images of a task's pages (one for an image task), added when new."""
        data = task.get("data") or {}
        refs, multipage = _image_refs_of(data)
        if not refs:
            raise StoreError(f"task {task.get('id')} has no image in data {sorted(data)}")
        ids = [self._task_image(conn, task, ref, index if multipage else None, confined) for index, ref in enumerate(refs)]
        return _TaskPages(tuple(ids), multipage)

    def _task_image(self, conn: sqlite3.Connection, task: Task, ref: str, index: int | None, confined: bool) -> int:
        """The store image of one of a task's images (`index`: its page in a multi-page task)."""
        if confined:
            _refuse_foreign_ref(ref, self.root, task.get("id"))
        size = _task_size(task, index)
        path = resolve_local(ref, self.root, confined=confined)
        sha = None
        if path is not None:
            data = _read_within(path, self.limits.max_bytes, ref, task.get("id"))
            sha = sha256_bytes(data)
            if size is None:
                try:
                    img = decode_image(data, str(path), limits=self.limits, sha256=sha)
                except ImageError as exc:
                    raise StoreError(f"task {task.get('id')}: {exc}") from None
                size = (img.width, img.height)
        if size is None:
            where = f"under {self.root}" if self.root else "under the current folder"
            page = f" (page {index + 1})" if index is not None else ""
            raise StoreError(f"task {task.get('id')}: image {ref}{page} is not readable {where} and no result carries its size "
                             "(an image without lines): pass --root, the folder its path is relative to")
        return self._upsert_image(conn, sha, ref, size[0], size[1], task.get("id"))

    def _results_page(self, image_id: int, results: list[Result], model_version: str) -> Page:
        row = self._image_row(image_id)
        regions = results_to_regions(results, row["width"], row["height"])
        return Page(width=row["width"], height=row["height"], sha256=row["sha256"] or "", regions=tuple(regions),
                    model_version=model_version, source=row["ref"] or "")

    # -- annotation bookkeeping: the newest live annotation of a task is the image's correction --

    def _apply_annotation(self, conn: sqlite3.Connection, pages: "_TaskPages", task_id: int | None, ann: Annotation, who: str) -> bool:
        ann_id = ann.get("id")
        try:
            stamp = _utc(ann.get("updated_at") or ann.get("created_at"))
        except StoreError as exc:
            raise StoreError(f"annotation {ann.get('id')} of task {task_id}: {exc}") from None
        regions: _PageRegions = [
            (image_id, [r.to_dict() for r in self._results_page(image_id, results, "").regions])
            for image_id, results in _per_page(pages, ann.get("result") or [])
        ]
        if ann_id is None:  # an export without ids: apply as it comes
            for image_id, page_regions in regions:
                self._replace(conn, image_id, page_regions, who, None)
            return True
        old = conn.execute("SELECT * FROM ls_annotations WHERE annotation_id = ?", (ann_id,)).fetchone()
        if old is not None and (old["deleted"] or old["updated_at"] >= stamp):
            return False  # a repeat, an older version, or an annotation deleted since
        anchor = pages.image_ids[0]
        conn.execute(
            "INSERT OR REPLACE INTO ls_annotations (annotation_id, task_id, image_id, updated_at, who, regions, deleted) VALUES (?, ?, ?, ?, ?, ?, 0)",
            (ann_id, task_id, anchor, stamp, who, _dump_regions(regions, anchor, pages.multipage)),
        )
        if self._winning_annotation_id(conn, anchor) != ann_id:
            return True  # stored, but a newer annotation of the task still wins
        for image_id, page_regions in regions:
            self._replace(conn, image_id, page_regions, who, ann_id)
            conn.execute("UPDATE images SET state = ? WHERE id = ?", (ReviewState.REVIEWED.value, image_id))
        return True

    def _delete_annotation(self, conn: sqlite3.Connection, task: Task, ann: Annotation) -> bool:
        ann_id = ann.get("id")
        old = conn.execute("SELECT * FROM ls_annotations WHERE annotation_id = ?", (ann_id,)).fetchone()
        if old is None:  # deleted before we saw it: a tombstone stops its late CREATED event
            conn.execute("INSERT INTO ls_annotations (annotation_id, task_id, updated_at, deleted) VALUES (?, ?, '', 1)", (ann_id, task.get("id")))
            return True
        if old["deleted"]:
            return False
        anchor = int(old["image_id"])  # the image (a multi-page task's first page) its task's annotations are kept on
        was_winner = self._winning_annotation_id(conn, anchor) == ann_id
        conn.execute("UPDATE ls_annotations SET deleted = 1 WHERE annotation_id = ?", (ann_id,))
        if was_winner:
            nxt = self._winning_annotation(conn, anchor)
            if nxt is not None:
                for image_id, regions in _load_regions(nxt):
                    self._replace(conn, image_id, regions, nxt["who"] or DEFAULT_WHO, int(nxt["annotation_id"]))
            else:  # no annotation left: back to the pages as they were before the first one came
                for image_id, _ in _load_regions(old):
                    self._replace(conn, image_id, self._page_before_annotations(conn, image_id), _annotator(ann) or DEFAULT_WHO, ann_id)
                    conn.execute("UPDATE images SET state = ? WHERE id = ?", (ReviewState.IN_PROGRESS.value, image_id))
        return True

    def _page_before_annotations(self, conn: sqlite3.Connection, image_id: int) -> list[dict[str, Any]]:
        """The regions the first live annotation replaced ([] when none is live)."""
        applied = conn.execute(
            "SELECT before FROM edits WHERE image_id = ? AND annotation_id IS NOT NULL AND op = ? AND undone = 0 ORDER BY id LIMIT 1",
            (image_id, EditOp.REPLACE.value),
        ).fetchone()
        return json.loads(applied[0]) if applied else []

    def _winning_annotation(self, conn: sqlite3.Connection, image_id: int) -> sqlite3.Row | None:
        return conn.execute(
            "SELECT * FROM ls_annotations WHERE image_id = ? AND deleted = 0 ORDER BY updated_at DESC, annotation_id DESC LIMIT 1", (image_id,)
        ).fetchone()

    def _winning_annotation_id(self, conn: sqlite3.Connection, image_id: int) -> int | None:
        winner = self._winning_annotation(conn, image_id)
        return None if winner is None else winner["annotation_id"]

    def _replace(self, conn: sqlite3.Connection, image_id: int, regions: list[dict[str, Any]], who: str, ann_id: int | None) -> None:
        before = [r.to_dict() for r in self._current(self._image_row(image_id)).regions]
        self._record(conn, image_id, None, EditOp.REPLACE, before, regions, who, ann_id)

    # -- export ----------------------------------------------------------------------------------

    def to_label_studio_tasks(self, config: LabelConfig | None = None, image_ids: Sequence[int] | None = None,
                              include_predictions: bool = True) -> list[Task]:
        """Tasks to re-import: the corrected page as an annotation, predictions as predictions."""
        config = config or LabelConfig.parse(recommended_config())
        with self._lock:
            shared = {int(r[0]) for r in self._conn.execute(
                "SELECT ls_task_id FROM images WHERE ls_task_id IS NOT NULL GROUP BY ls_task_id HAVING COUNT(*) > 1")}
        tasks = []
        for image_id in image_ids if image_ids is not None else self.image_ids():
            tasks.append(self._task(image_id, config, include_predictions, shared))
        return tasks

    def _task(self, image_id: int, config: LabelConfig, include_predictions: bool, shared: set[int]) -> Task:
        info = self.get_image(image_id)
        task: Task = {"data": {config.data_key: info.ref or ""}}
        if info.ls_task_id is not None and info.ls_task_id not in shared:  # a page is not its document's task
            task["id"] = info.ls_task_id
        if include_predictions:
            predictions: list[Prediction | int] = [
                {"model_version": v, "score": round(p.score, 6), "result": page_to_results(p, config)} for v, p in self.predictions(image_id).items()
            ]
            task["predictions"] = predictions
        if self.is_corrected(image_id):
            page = self.current_page(image_id)
            reviewers = self.reviewers(image_id)
            task["annotations"] = [{"result": page_to_results(page, config), "completed_by_name": ", ".join(reviewers)}]
        return task


# --- Label Studio's JSON -------------------------------------------------------------------------


def _read_within(path: Path, max_bytes: int, ref: str, task_id: object) -> bytes:
    size = path.stat().st_size
    if size > max_bytes:
        raise StoreError(f"task {task_id}: image {ref} is {size} bytes, over the {max_bytes}-byte limit (SVTR_MAX_IMAGE_BYTES); not read")
    return path.read_bytes()


def _utc(stamp: str | None) -> str:
    """Label Studio timestamps to one comparable form (UTC ISO). Timestamps order the versions of
    an annotation, so one that is not a timestamp is refused: stored as text it would compare
    above every real one and freeze the annotation against later updates."""
    if not stamp:
        return ""
    try:
        dt = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        raise StoreError(f"{str(stamp)[:40]!r} is not an ISO 8601 timestamp (updated_at / created_at)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _prediction_objects(task: Task) -> list[Prediction]:
    """The task's predictions with their results: Label Studio's JSON export lists them as bare
    ids, which carry nothing to import."""
    return [p for p in task.get("predictions") or [] if isinstance(p, dict)]


def _annotator(ann: Annotation) -> str:
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


def _looks_like_ref(value: Any) -> bool:
    return isinstance(value, str) and (value.startswith(("/", "http", "s3://", "gs://")) or "." in value)


def _image_refs_of(data: dict[str, Any]) -> tuple[list[str], bool]:
    """The task's images and whether it is a multi-page task: data.image; else a list of refs
    (data.pages first: a multi-page task's, `<Image valueList="$pages">`); else the first string
    value that looks like an image ref. Lists come before strings: a document task's other
    fields (a title such as "report.pdf") would look like refs too."""
    for key in ("image", "pages"):
        value = data.get(key)
        if isinstance(value, str):
            return [value], False
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return list(value), True
    for value in data.values():
        if isinstance(value, list) and value and all(_looks_like_ref(v) for v in value):
            return list(value), True
    for value in data.values():
        if _looks_like_ref(value):
            return [value], False
    return [], False


def _task_size(task: Task, index: int | None = None) -> tuple[int, int] | None:
    """The image size the task's first result carries (annotations first, then predictions); of
    page `index` only, in a multi-page task."""
    for group in (task.get("annotations") or [], _prediction_objects(task)):
        for item in group:
            results = item.get("result") or []
            if index is not None:
                results = [r for r in results if isinstance(r, dict) and item_index_of(r) == index]
            size = image_size_of(results)
            if size:
                return size
    return None


@dataclass(frozen=True)
class _TaskPages:
    """The store images of a task, in page order (one for an image task)."""

    image_ids: tuple[int, ...]
    multipage: bool


# (image id, regions as dicts) per page of an annotation
_PageRegions = list[tuple[int, list[dict[str, Any]]]]


def _per_page(pages: _TaskPages, results: list[Result]) -> list[tuple[int, list[Result]]]:
    """Results split by page (item_index) onto the pages' images; an image task takes them all.
    Results on a page the task does not have are left out."""
    if not pages.multipage:
        return [(pages.image_ids[0], results)]
    by_item = results_by_item(results)
    return [(image_id, by_item.get(index, [])) for index, image_id in enumerate(pages.image_ids)]


def _dump_regions(regions: _PageRegions, anchor: int, multipage: bool) -> str:
    """An annotation's regions as stored: the list of its image's regions (an image task), or
    {"pages": [{"image_id", "regions"}, ...]} for a multi-page task."""
    if not multipage and len(regions) == 1 and regions[0][0] == anchor:
        return json.dumps(regions[0][1], ensure_ascii=False)
    return json.dumps({"pages": [{"image_id": i, "regions": r} for i, r in regions]}, ensure_ascii=False)


def _load_regions(row: sqlite3.Row) -> _PageRegions:
    """The inverse of _dump_regions, for a stored ls_annotations row."""
    value = json.loads(row["regions"] or "[]")
    if isinstance(value, dict):
        return [(int(p["image_id"]), list(p["regions"])) for p in value.get("pages", [])]
    return [(int(row["image_id"]), value)]


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
