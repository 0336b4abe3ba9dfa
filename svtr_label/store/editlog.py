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
    """A region's review state, about its text: checked as it came (accepted), checked after a
    reviewer changed it (corrected), or not checked (unchecked: a prediction nobody looked at, a
    box drawn or moved since its text was read). `region_states` lists checked regions only."""

    ACCEPTED = "accepted"
    CORRECTED = "corrected"
    UNCHECKED = "unchecked"


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


@dataclass(frozen=True)
class _TextCheck:
    """What region_states tracks per region: the text it came with, its text now, and whether a
    person has checked that text against the current box."""

    original: str | None  # None: a person's text from the start (a replaced page)
    text: str | None
    checked: bool

    def state(self) -> RegionState:
        if not self.checked:
            return RegionState.UNCHECKED
        return RegionState.ACCEPTED if self.original is not None and self.text == self.original else RegionState.CORRECTED


# Edits that leave a region's text checked: typed, read again from the box, marked illegible, confirmed.
_CHECKING_OPS = (EditOp.SET_TEXT, EditOp.MARK_ILLEGIBLE, EditOp.ACCEPT_REGION)


def _text_of(region: Any) -> str | None:
    return region.get("text") if isinstance(region, dict) else None


def _track(check: _TextCheck | None, edit: Edit) -> _TextCheck:
    """One region's check after one of its edits (neither a delete nor a page replacement)."""
    text = _text_of(edit.after)
    if edit.op == EditOp.ADD_REGION or check is None:
        # A drawn box's text was read by the engine, nobody checked it; a prediction's first edit
        # tells the text it was predicted with.
        original = text if edit.op == EditOp.ADD_REGION else _text_of(edit.before)
        check = _TextCheck(original, original, False)
    if edit.op == EditOp.SET_POINTS:
        return _TextCheck(check.original, text, False)  # the text was read from the old box
    return _TextCheck(check.original, text, check.checked or edit.op in _CHECKING_OPS)


def region_states(edits: Iterable[Edit]) -> dict[str, RegionState]:
    """Review state of the checked regions, by id, from the live edits; a region not listed is
    unchecked. Accepted: checked, its text as it came (predicted, or read into a drawn box).
    Corrected: checked, its text changed by a person (typed, illegible, or a re-read of a moved
    box that reads differently). Moving a box unchecks it until re-read or accepted.

    A page replaced as a whole (a Label Studio annotation) is a person's work: corrected throughout.
    """
    checks: dict[str, _TextCheck] = {}
    for edit in page_edits(edits):
        if edit.op == EditOp.REPLACE:
            checks = {r["id"]: _TextCheck(None, _text_of(r), True) for r in edit.after or []}
        elif edit.region_id is None:
            continue
        elif edit.op == EditOp.DELETE_REGION:
            checks.pop(edit.region_id, None)
        else:
            checks[edit.region_id] = _track(checks.get(edit.region_id), edit)
    states = {rid: check.state() for rid, check in checks.items()}
    return {rid: state for rid, state in states.items() if state != RegionState.UNCHECKED}


# --- several reviewers: which edits an undo or redo would go over ------------------------------


def touched_region_ids(op: EditOp | str, region_id: str | None, before: Any, after: Any) -> frozenset[str]:
    """The region ids an edit changes: its own, or every id a replaced page had or has."""
    if op == EditOp.REPLACE:
        return frozenset(r["id"] for side in (before, after) for r in side or [] if isinstance(r, dict) and "id" in r)
    return frozenset() if region_id is None else frozenset({region_id})


def touched_regions(edit: Edit) -> frozenset[str]:
    return touched_region_ids(edit.op, edit.region_id, edit.before, edit.after)


def overlaps(a: Edit, b: Edit) -> bool:
    """True when two edits change the same thing: a region, or the image's review state."""
    if EditOp.SET_STATE in (a.op, b.op):
        return a.op == b.op
    return bool(touched_regions(a) & touched_regions(b))


def blocking_edit(edit: Edit, log: Iterable[Edit]) -> Edit | None:
    """The latest live edit made after `edit` by someone else on what `edit` changed (None: none).
    Undoing or redoing `edit` over it would silently replace that person's work."""
    found = None
    for other in live(log):
        if other.id > edit.id and other.who != edit.who and overlaps(edit, other):
            found = other
    return found


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
