"""The review of one image at a time, as state and actions: `EditorModel` holds the review
position and turns every action into store calls (one per action, except re-reading a whole
image: one per line), so it is tested with plain pytest. The anywidget view on top of it is
`editor.Editor`; outline edits live in `boxes.py`, the browser's commands and polling in
`commands.py`. Nothing is kept only here: every edit is in the store the moment it is made
(restart the kernel and reopen, everything is there, and the editor reopens where you stopped).

Several reviewers share one store: every edit carries the region's version the reviewer saw
(`expected_version`); the store refuses a stale one with `StaleEdit`, which the editor shows
(naming who changed the line) and answers by reloading the line. Undo and redo are per reviewer.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import Sequence

from svtr_label.core.page import IGNORE_TEXT, Page, Region
from svtr_label.dataset.validate import Rules, region_issues
from svtr_label.errors import StaleEdit, UsageError
from svtr_label.ocr.engine import OcrEngine
from svtr_label.store import EditOp, Store

from .boxes import BoxEdits, rotated, rotated_box
from .commands import Commands
from .data import ImageCache
from .positions import Positions, image_name

__all__ = ["EditorModel", "Progress", "image_name", "rotated", "rotated_box"]

ORDERS = ("score", "reading")


@dataclass(frozen=True)
class Progress:
    position: int  # 1-based place of the image in this editor's list
    n_images: int
    image_id: int  # the store's id: the same number in every notebook and the browser
    name: str  # the image's file name
    lines_done: int  # checked (accepted or corrected) lines of this image
    n_lines: int
    images_reviewed: int
    state: str

    def text(self) -> str:
        return (
            f"#{self.image_id} {self.name} · image {self.position} of {self.n_images} ({self.state.replace('_', ' ')}) · "
            f"lines checked {self.lines_done}/{self.n_lines} · images reviewed {self.images_reviewed}/{self.n_images}"
        )


def reading_key(region: Region) -> tuple[float, float]:
    ys = [p[1] for p in region.points]
    xs = [p[0] for p in region.points]
    return (round(min(ys) / 10.0), min(xs))  # rows of ~10 px, then left to right


def score_key(region: Region) -> tuple[float, tuple[float, float]]:
    # Lines the model never scored (drawn by hand) come first: nobody has checked them yet.
    return (region.score if region.score is not None else -1.0, reading_key(region))


class EditorModel(BoxEdits, Commands):
    """The review position over a list of store images and the actions on it."""

    def __init__(
        self,
        store: Store,
        image_ids: Sequence[int] | None = None,
        engine: OcrEngine | None = None,
        who: str | None = None,
        low_score: float = 0.8,
        order: str = "score",
        images: ImageCache | None = None,
        rules: Rules | None = None,
        resume: bool = True,
    ) -> None:
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
        self.store = store
        self.image_ids = list(image_ids) if image_ids is not None else store.image_ids()
        if not self.image_ids:
            raise UsageError(f"{store.path} holds no images to review: add predictions first")
        self.engine = engine
        self.who = who or getpass.getuser()
        self.low_score = low_score
        self.order = order
        self.rules = rules or Rules()
        self.images = images or ImageCache(store)
        self.positions = Positions(store)
        self.position = 0
        self.line = 0
        self.vertex: int | None = None
        self.zoom = False
        self.draw_mode = ""  # "", "box", "quad" or "rotated"
        self.message = ""
        self.message_kind = "info"  # info, warn (a refused or stale edit), error
        self.revision = -1
        self._own: dict[tuple[int, str], dict[int, int]] = {}  # own edits: version before -> after
        self._reviewed: set[int] = set()
        self.refresh_reviewed()
        self._load()
        saved = self.positions.get(self.who) if resume else {}
        if saved.get("image_id") in self.image_ids:
            self.go_to_image(self.image_ids.index(saved["image_id"]), remember=False)
            if saved.get("region_id") in [r.id for r in self.lines]:
                self.line = [r.id for r in self.lines].index(saved["region_id"])
            self.message = f"resumed where you stopped ({self.progress().name})"
        else:
            self._first_open_line()

    # -- state ---------------------------------------------------------------------------------

    @property
    def image_id(self) -> int:
        return self.image_ids[self.position]

    @property
    def current(self) -> Region | None:
        return self.lines[self.line] if self.lines else None

    def _load(self, keep: str | None = None) -> None:
        """Re-read the page from the store (the only truth); keep the line `keep` selected if it exists."""
        self.revision = self.store.revision()  # before the reads: a write after them shows in the next poll
        self.page: Page
        self.page, self.versions = self.store.page_and_versions(self.image_id)
        self.states: dict[str, str] = self.store.region_states(self.image_id)
        self.notes = self._notes()
        self.info = self.store.get_image(self.image_id)
        if self.info.state == "reviewed":
            self._reviewed.add(self.image_id)
        else:
            self._reviewed.discard(self.image_id)
        key = score_key if self.order == "score" else reading_key
        self.lines: list[Region] = sorted(self.page.regions, key=key)
        ids = [r.id for r in self.lines]
        if keep in ids:
            self.line = ids.index(keep)
        self.line = min(max(self.line, 0), max(len(self.lines) - 1, 0))

    def _notes(self) -> dict[str, str]:
        """Why an unchecked line needs a look beyond its score: its box moved after its text was
        read ('moved'), or it was drawn by hand ('drawn')."""
        last: dict[str, EditOp] = {}
        for edit in self.store.history(self.image_id):
            if not edit.undone and edit.region_id is not None and edit.op in (EditOp.ADD_REGION, EditOp.SET_POINTS):
                last[edit.region_id] = edit.op
        notes = {}
        for rid, op in last.items():
            if rid not in self.states:
                notes[rid] = "drawn" if op == EditOp.ADD_REGION else "moved"
        return notes

    def done(self, region: Region) -> bool:
        return region.id in self.states

    def state_of(self, region: Region) -> str:
        """'accepted', 'corrected', or for an unchecked line 'moved', 'drawn' or 'unchecked'."""
        return str(self.states.get(region.id) or self.notes.get(region.id) or "unchecked")

    def is_low(self, region: Region) -> bool:
        return region.score is not None and region.score < self.low_score and not self.done(region)

    def issues(self, region: Region) -> list[tuple[str, str]]:
        """(kind, message) of the export checks this line fails (text, outline, crop too small)."""
        return [(i.kind, i.message) for i in region_issues("", region, self.rules)]

    def progress(self) -> Progress:
        return Progress(
            position=self.position + 1,
            n_images=len(self.image_ids),
            image_id=self.image_id,
            name=image_name(self.info.ref, self.image_id),
            lines_done=sum(self.done(r) for r in self.lines),
            n_lines=len(self.lines),
            images_reviewed=len(self._reviewed),
            state=self.info.state,
        )

    def refresh_reviewed(self) -> None:
        """Which images of the list are reviewed (they may change by other reviewers)."""
        wanted = set(self.image_ids)
        self._reviewed = {i.id for i in self.store.images() if i.id in wanted and i.state == "reviewed"}

    def _region(self, region_id: str | None) -> Region:
        if region_id is None:
            if self.current is None:
                raise UsageError("this image has no lines: draw one first (Alt+N, or Shift+drag on the picture)")
            return self.current
        for r in self.lines:
            if r.id == region_id:
                return r
        raise UsageError(f"image {self.image_id} has no line {region_id!r} (deleted or undone?)")

    def _expected(self, region: Region, version: int | None) -> int:
        """The version an edit of `region` expects: the one the reviewer saw, else the one read
        last; moved past this reviewer's own later edits (the browser sends the version it was
        shown, which may be older than an edit of its own still on the way back to it)."""
        v = int(version) if version is not None else self.versions.get(region.id, 0)
        chain = self._own.get((self.image_id, region.id), {})
        seen: set[int] = set()
        while v in chain and v not in seen:
            seen.add(v)
            v = chain[v]
        return v

    def _wrote(self, region_id: str, expected: int) -> None:
        """After an own edit and the reload: remember which version it turned `expected` into."""
        new = self.versions.get(region_id)
        if new is not None and new != expected:
            self._own.setdefault((self.image_id, region_id), {})[expected] = new

    def _say(self, message: str, kind: str = "info") -> None:
        self.message, self.message_kind = message, kind

    # -- navigation ----------------------------------------------------------------------------

    def remember(self) -> None:
        """Save where this reviewer is (reopening the editor resumes here)."""
        self.positions.set(self.who, self.image_id, self.current.id if self.current else None)

    def select(self, region_id: str) -> None:
        self._region(region_id)  # a stale id (line deleted meanwhile) must not act on another line
        ids = [r.id for r in self.lines]
        if ids.index(region_id) != self.line:
            self.line = ids.index(region_id)
            self.vertex = None
        self.remember()

    def next_line(self, step: int = 1) -> None:
        if self.lines:
            self.line = (self.line + step) % len(self.lines)
            self.vertex = None
            self.remember()

    def prev_line(self) -> None:
        self.next_line(-1)

    def go_to_image(self, position: int, remember: bool = True) -> None:
        self.position = min(max(position, 0), len(self.image_ids) - 1)
        self.line, self.vertex, self.draw_mode = 0, None, ""
        self._load()
        self._first_open_line()
        if remember:
            self.remember()

    def go_to_image_id(self, image_id: int) -> None:
        if image_id not in self.image_ids:
            raise UsageError(f"image #{image_id} is not in this editor's list")
        self.go_to_image(self.image_ids.index(image_id))

    def next_image(self) -> None:
        if self.position == len(self.image_ids) - 1:
            self._say("this is the last image of the list")
        self.go_to_image(self.position + 1)

    def prev_image(self) -> None:
        if self.position == 0:
            self._say("this is the first image of the list")
        self.go_to_image(self.position - 1)

    def _first_open_line(self, start: int = 0) -> bool:
        """Move to the first unchecked line from `start` on (wrapping); False when all are checked."""
        n = len(self.lines)
        for k in range(n):
            i = (start + k) % n
            if not self.done(self.lines[i]):
                self.line = i
                return True
        return False

    # -- edits (each one store transaction) ----------------------------------------------------

    def set_text(self, text: str, region_id: str | None = None, score: float | None = None, version: int | None = None) -> bool:
        """Write a line's text (and the recognizer's score, after a re-read); nothing is recorded
        when neither changed. True when written. Raises StaleEdit when the line changed since
        `version` (default: since this model read it)."""
        region = self._region(region_id)
        text = text.replace("\r", "").replace("\n", " ").strip()
        if text == region.text and (score is None or score == region.score):
            return False
        expected = self._expected(region, version)
        self.store.set_text(self.image_id, region.id, text, who=self.who, score=score, expected_version=expected)
        self._load(keep=self.current.id if self.current else None)
        self._wrote(region.id, expected)
        return True

    def accept(self, text: str | None = None, region_id: str | None = None, version: int | None = None) -> None:
        """Confirm a line (with `text` typed so far, if given), then go to the next unchecked one."""
        region = self._region(region_id)
        if text is not None:
            self.set_text(text, region.id, version=version)
        expected = self._expected(region, version)
        self.store.accept_region(self.image_id, region.id, who=self.who, expected_version=expected)
        self._load(keep=region.id)
        self._wrote(region.id, expected)
        self.vertex = None
        if not self._first_open_line(self.line + 1):
            self._finish_image()
        self.remember()

    def _finish_image(self) -> None:
        """Every line checked: the image is reviewed (undo takes that back too)."""
        if self.info.state != "reviewed":
            self.store.set_image_state(self.image_id, "reviewed", who=self.who)
            self._load(keep=self.current.id if self.current else None)
        self._say("every line checked: image marked reviewed (PgDn: next image)")

    def mark_reviewed(self) -> None:
        self.store.set_image_state(self.image_id, "reviewed", who=self.who)
        self._load(keep=self.current.id if self.current else None)
        self._say("image marked reviewed")

    def mark_illegible(self, region_id: str | None = None, version: int | None = None) -> None:
        region = self._region(region_id)
        expected = self._expected(region, version)
        if region.text != IGNORE_TEXT:
            self.store.mark_illegible(self.image_id, region.id, who=self.who, expected_version=expected)
        self._load(keep=region.id)
        self._wrote(region.id, expected)

    def delete(self, region_id: str | None = None, version: int | None = None) -> None:
        region = self._region(region_id)
        self.store.delete_region(self.image_id, region.id, who=self.who, expected_version=self._expected(region, version))
        self._load()
        self.vertex = None
        self._say(f"line {region.text!r} deleted (Alt+Z undoes)")

    def rerecognize(self, region_id: str | None = None, version: int | None = None) -> str:
        """Read the line's text again with the engine (after its box was moved or drawn)."""
        engine = self._engine()
        region = self._region(region_id)
        found = engine.recognize(self.images.get(self.image_id), [region.points])[0]
        if not self.set_text(found.text, region.id, score=found.score, version=version):
            # Nothing changed, so nothing was written: confirm the text as read from this box.
            expected = self._expected(region, version)
            self.store.accept_region(self.image_id, region.id, who=self.who, expected_version=expected)
            self._load(keep=region.id)
            self._wrote(region.id, expected)
        self._say(f"re-read: {found.text!r} (score {found.score:.2f})")
        return found.text

    def rerecognize_all(self) -> int:
        """Read every box of the image again (one batch through the engine); returns how many
        texts changed. Lines another reviewer changed meanwhile are left alone and named."""
        engine = self._engine()
        regions = list(self.lines)
        if not regions:
            raise UsageError("this image has no lines: draw one first")
        keep = self.current.id if self.current else None
        found = engine.recognize(self.images.get(self.image_id), [r.points for r in regions])
        changed, stale = 0, []
        for region, read in zip(regions, found):
            if read.text == region.text and read.score == region.score:
                continue
            try:
                self.store.set_text(self.image_id, region.id, read.text, who=self.who, score=read.score,
                                    expected_version=self.versions.get(region.id, 0))
                changed += read.text != region.text
            except StaleEdit as exc:
                stale.append(exc.by or "someone")
        self._load(keep=keep)
        self._say(f"re-read {len(regions)} lines: {changed} texts changed"
                  + (f"; {len(stale)} skipped, changed meanwhile by {', '.join(sorted(set(stale)))}" if stale else ""),
                  "warn" if stale else "info")
        return changed

    def _engine(self) -> OcrEngine:
        if self.engine is None:
            raise UsageError("no OCR engine given to the editor: Editor(store, engine=Services.from_env().engine('bundled'))")
        return self.engine

    def undo(self) -> None:
        before = dict(self.versions)
        edit = self.store.undo(self.image_id, self.who)
        if edit is None:
            self._say(f"nothing of yours ({self.who}) to undo on this image")
            return
        self._load(keep=edit.region_id)
        if edit.region_id in before:
            self._wrote(edit.region_id, before[edit.region_id])
        self.vertex = None
        self._say(f"undone: {str(edit.op).replace('_', ' ')} (Alt+Y redoes)")

    def redo(self) -> None:
        before = dict(self.versions)
        edit = self.store.redo(self.image_id, self.who)
        if edit is None:
            self._say("nothing to redo on this image")
            return
        self._load(keep=edit.region_id)
        if edit.region_id in before:
            self._wrote(edit.region_id, before[edit.region_id])
        self.vertex = None
        self._say(f"redone: {str(edit.op).replace('_', ' ')}")

    def toggle_zoom(self) -> None:
        self.zoom = not self.zoom
