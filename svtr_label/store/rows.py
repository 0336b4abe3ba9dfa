"""Store rows to values: the JSON columns, edits, predictions, pages read in bulk."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from svtr_label.core.page import Page
from svtr_label.store.editlog import Edit, EditOp, LoggedEdit

_T = TypeVar("_T")
# Ids per `IN (...)` query: well under SQLite's oldest limit of 999 bound variables.
_CHUNK = 500

# (prediction id, model_version) of an image's predictions, oldest first: the latest has the
# highest id, since storing a prediction again replaces its row.
PredictionRef = tuple[int, str]


def dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def edit_from_row(row: sqlite3.Row) -> Edit:
    return Edit(
        id=int(row["id"]), image_id=int(row["image_id"]), region_id=row["region_id"], op=EditOp(row["op"]),
        before=load(row["before"]), after=load(row["after"]), who=row["who"], at=row["at"], undone=bool(row["undone"]),
    )


def logged_from_row(row: sqlite3.Row) -> LoggedEdit:
    return LoggedEdit(edit_from_row(row), str(row["base_version"]))


def prediction_ref(row: sqlite3.Row) -> PredictionRef:
    return int(row["id"]), str(row["model_version"])


def by_image(rows: Iterable[sqlite3.Row], value: Callable[[sqlite3.Row], _T]) -> defaultdict[int, list[_T]]:
    """Rows grouped by their image_id, in the order read; images without rows get []."""
    grouped: defaultdict[int, list[_T]] = defaultdict(list)
    for row in rows:
        grouped[int(row["image_id"])].append(value(row))
    return grouped


def load_pages(conn: sqlite3.Connection, prediction_ids: Sequence[int]) -> dict[int, Page]:
    """The stored pages of these predictions, by prediction id."""
    pages = {}
    for start in range(0, len(prediction_ids), _CHUNK):
        chunk = prediction_ids[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        for pid, page in conn.execute(f"SELECT id, page FROM predictions WHERE id IN ({marks})", tuple(chunk)):
            pages[int(pid)] = Page.from_dict(json.loads(page))
    return pages
