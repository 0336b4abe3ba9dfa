"""The edit log as pure functions: what a reviewer can do to a page, and how the log becomes a page.

Corrections are kept as an edit log, not as a rewritten page: the current page of an image is its
base prediction with the live (not undone) edits replayed in order. The store reads the log out of
SQLite; everything here works on plain values (`Edit`, `LoggedEdit`, `Page`), so the rules can be
read and tested without a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from svtr_label.core.page import Page, Region


class _StrEnum(str, Enum):
    """A str enum whose str() and format() are its value, so messages read as before the enums."""

    def __str__(self) -> str:
        return str(self.value)


class EditOp(_StrEnum):
    """What an edit did; the strings are the `op` column of the edits table."""

    REPLACE = "replace"  # the whole page at once (a Label Studio annotation, or its removal)
    SET_STATE = "set_state"  # the image's review state; changes no region
    SET_TEXT = "set_text"
    MARK_ILLEGIBLE = "mark_illegible"
    SET_POINTS = "set_points"
    ACCEPT_REGION = "accept_region"  # confirmed as predicted: after == before
    DELETE_REGION = "delete_region"  # after is None
    ADD_REGION = "add_region"  # before is None


class ReviewState(_StrEnum):
    """An image's review state, as the images table stores it."""

    UNREVIEWED = "unreviewed"
    IN_PROGRESS = "in_progress"
    REVIEWED = "reviewed"


class RegionState(_StrEnum):
    """A region's review state: confirmed as predicted, or changed by a person."""

    ACCEPTED = "accepted"
    CORRECTED = "corrected"


# The review states as plain strings, in review order (what widgets list).
IMAGE_STATES = tuple(s.value for s in ReviewState)


@dataclass(frozen=True)
class Edit:
    """One edit of an image: a region's (or the whole page's) value before and after, as dicts."""

    id: int
    image_id: int
    region_id: str | None
    op: EditOp
    before: Any
    after: Any
    who: str
    at: str
    undone: bool


@dataclass(frozen=True)
class LoggedEdit:
    """An edit as the log holds it, with the prediction version its image's edits were made on."""

    edit: Edit
    base_version: str


def live(edits: Iterable[Edit]) -> list[Edit]:
    """The edits still in effect: undo flags an edit instead of deleting it."""
    return [e for e in edits if not e.undone]


def page_edits(edits: Iterable[Edit]) -> list[Edit]:
    """The live edits that change regions (a review-state change does not)."""
    return [e for e in live(edits) if e.op != EditOp.SET_STATE]


def count_page_edits(edits: Iterable[Edit]) -> int:
    return len(page_edits(edits))


def apply_edit(regions: dict[str, Region], edit: Edit) -> dict[str, Region]:
    """The regions (by id, in page order) after one edit; `regions` is left as it was."""
    if edit.op == EditOp.REPLACE:
        return {r["id"]: Region.from_dict(r) for r in edit.after or []}
    out = dict(regions)
    if edit.region_id is None:
        return out
    if edit.after is None:
        out.pop(edit.region_id, None)
    else:
        # An edited region keeps its place; an added one goes last.
        out[edit.region_id] = Region.from_dict(edit.after)
    return out


def replay(page: Page, edits: Iterable[Edit]) -> Page:
    """The page with its live region edits replayed in order over its regions."""
    regions = {r.id: r for r in page.regions}
    for edit in page_edits(edits):
        regions = apply_edit(regions, edit)
    return page.with_(regions=tuple(regions.values()))


def region_states(edits: Iterable[Edit]) -> dict[str, RegionState]:
    """Review state per region id, from the live edits: accepted, or corrected (any other edit).

    A page replaced as a whole (a Label Studio annotation) counts as corrected throughout.
    """
    states: dict[str, RegionState] = {}
    for edit in page_edits(edits):
        if edit.op == EditOp.REPLACE:
            states = {r["id"]: RegionState.CORRECTED for r in edit.after or []}
        elif edit.region_id is None:
            continue
        elif edit.op == EditOp.DELETE_REGION:
            states.pop(edit.region_id, None)
        elif edit.op == EditOp.ACCEPT_REGION:
            states[edit.region_id] = RegionState.ACCEPTED
        else:
            states[edit.region_id] = RegionState.CORRECTED
    return states


# --- which prediction the edits apply to -------------------------------------------------------
# Region ids are per prediction, so edits only make sense on the prediction they were made on:
# the first edit pins it (its base_version), and a later model run never moves the corrections.


def base_version(log: Iterable[LoggedEdit]) -> str | None:
    """The version the image's edits were made on: pinned by its first live edit (any op);
    None while no edit is live."""
    for logged in log:
        if not logged.edit.undone:
            return logged.base_version
    return None


def version_to_pin(base: str | None, latest_prediction: str | None) -> str:
    """The base_version a new edit records: the pinned one, else the latest prediction's
    (what the person saw), else "" (an image with no prediction)."""
    if base is not None:
        return base
    return latest_prediction or ""


def shown_version(requested: str | None, base: str | None) -> str | None:
    """The prediction a page is built on: the one asked for, else the base (None: the latest)."""
    return requested if requested is not None else base


def replays_edits(requested: str | None, base: str | None) -> bool:
    """Edits apply only to their own base: another version asked for is shown as predicted."""
    return requested is None or base is None or requested == base


def edits_for(log: Sequence[LoggedEdit], requested: str | None) -> list[Edit]:
    """The edits to replay over the prediction shown for `requested` (none for another version)."""
    if not replays_edits(requested, base_version(log)):
        return []
    return [logged.edit for logged in log]
