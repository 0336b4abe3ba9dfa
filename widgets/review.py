"""The review of one image at a time, as state and actions: `EditorModel` holds the review
position and turns every action into one store call, so it is tested with plain pytest. The
ipywidgets view on top of it is `editor.Editor`. Nothing is kept only here: every edit is in the
store the moment it is made (restart the kernel and reopen, everything is there).
"""

from __future__ import annotations

import getpass
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from svtr_label.core.geometry import clamp, order_clockwise
from svtr_label.core.page import IGNORE_TEXT, Page, Region
from svtr_label.errors import UsageError
from svtr_label.ocr.engine import OcrEngine
from svtr_label.store import Store

from .data import ImageCache

ORDERS = ("score", "reading")


@dataclass(frozen=True)
class Progress:
    position: int  # 1-based image number in the review list
    n_images: int
    lines_done: int  # accepted or corrected lines of this image
    n_lines: int
    images_reviewed: int
    state: str

    def text(self) -> str:
        return (
            f"image {self.position}/{self.n_images} ({self.state}) · "
            f"lines checked {self.lines_done}/{self.n_lines} · images reviewed {self.images_reviewed}/{self.n_images}"
        )


def reading_key(region: Region) -> tuple[float, float]:
    ys = [p[1] for p in region.points]
    xs = [p[0] for p in region.points]
    return (round(min(ys) / 10.0), min(xs))  # rows of ~10 px, then left to right


def score_key(region: Region) -> tuple[float, tuple[float, float]]:
    # Lines the model never scored (drawn by hand) come first: nobody has checked them yet.
    return (region.score if region.score is not None else -1.0, reading_key(region))


class EditorModel:
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
        self.images = images or ImageCache(store)
        self.position = 0
        self.line = 0
        self.vertex: int | None = None
        self.zoom = False
        self.draw_mode = False
        self.message = ""
        self._reviewed = {i for i in self.image_ids if store.get_image(i).state == "reviewed"}
        self._load()
        self._first_open_line()  # reopening resumes where the review stopped

    # -- state ---------------------------------------------------------------------------------

    @property
    def image_id(self) -> int:
        return self.image_ids[self.position]

    @property
    def current(self) -> Region | None:
        return self.lines[self.line] if self.lines else None

    def _load(self, keep: str | None = None) -> None:
        """Re-read the page from the store (the only truth); keep the line `keep` selected if it exists."""
        self.page: Page = self.store.current_page(self.image_id)
        self.states: dict[str, str] = self.store.region_states(self.image_id)
        key = score_key if self.order == "score" else reading_key
        self.lines: list[Region] = sorted(self.page.regions, key=key)
        ids = [r.id for r in self.lines]
        if keep in ids:
            self.line = ids.index(keep)
        self.line = min(max(self.line, 0), max(len(self.lines) - 1, 0))

    def done(self, region: Region) -> bool:
        return region.id in self.states

    def is_low(self, region: Region) -> bool:
        return region.score is not None and region.score < self.low_score and not self.done(region)

    def progress(self) -> Progress:
        return Progress(
            position=self.position + 1,
            n_images=len(self.image_ids),
            lines_done=sum(self.done(r) for r in self.lines),
            n_lines=len(self.lines),
            images_reviewed=len(self._reviewed),
            state=self.store.get_image(self.image_id).state,
        )

    def _region(self, region_id: str | None) -> Region:
        if region_id is None:
            if self.current is None:
                raise UsageError("this image has no lines: draw one first")
            return self.current
        for r in self.lines:
            if r.id == region_id:
                return r
        raise UsageError(f"image {self.image_id} has no line {region_id!r} (deleted or undone?)")

    # -- navigation ----------------------------------------------------------------------------

    def select(self, region_id: str) -> None:
        self._region(region_id)  # a stale id (line deleted meanwhile) must not act on another line
        ids = [r.id for r in self.lines]
        if ids.index(region_id) != self.line:
            self.line = ids.index(region_id)
            self.vertex = None

    def next_line(self, step: int = 1) -> None:
        if self.lines:
            self.line = (self.line + step) % len(self.lines)
            self.vertex = None

    def prev_line(self) -> None:
        self.next_line(-1)

    def go_to_image(self, position: int) -> None:
        self.position = min(max(position, 0), len(self.image_ids) - 1)
        self.line, self.vertex = 0, None
        self._load()
        self._first_open_line()

    def next_image(self) -> None:
        self.go_to_image(self.position + 1)

    def prev_image(self) -> None:
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

    def set_text(self, text: str, region_id: str | None = None, score: float | None = None) -> bool:
        """Write a line's text (and the recognizer's score, after a re-read); nothing is recorded
        when neither changed. True when written."""
        region = self._region(region_id)
        text = text.strip("\r\n")
        if text == region.text and (score is None or score == region.score):
            return False
        self.store.set_text(self.image_id, region.id, text, who=self.who, score=score)
        self._load(keep=self.current.id if self.current else None)
        return True

    def accept(self, text: str | None = None, region_id: str | None = None) -> None:
        """Confirm a line (with `text` typed so far, if given), then go to the next unchecked one."""
        region = self._region(region_id)
        if text is not None:
            self.set_text(text, region.id)
        self.store.accept_region(self.image_id, region.id, who=self.who)
        self._load(keep=region.id)
        self.vertex = None
        if not self._first_open_line(self.line + 1):
            self._finish_image()

    def _finish_image(self) -> None:
        """Every line checked: the image is reviewed (undo takes that back too)."""
        if self.image_id not in self._reviewed:
            self.store.set_image_state(self.image_id, "reviewed", who=self.who)
            self._reviewed.add(self.image_id)
        self.message = "every line checked: image marked reviewed (PgDn: next image)"

    def mark_reviewed(self) -> None:
        self.store.set_image_state(self.image_id, "reviewed", who=self.who)
        self._reviewed.add(self.image_id)
        self.message = "image marked reviewed"

    def mark_illegible(self, region_id: str | None = None) -> None:
        region = self._region(region_id)
        if region.text != IGNORE_TEXT:
            self.store.mark_illegible(self.image_id, region.id, who=self.who)
        self._load(keep=region.id)

    def delete(self, region_id: str | None = None) -> None:
        region = self._region(region_id)
        self.store.delete_region(self.image_id, region.id, who=self.who)
        self._load()
        self.vertex = None
        self.message = "line deleted (Alt+Z undoes)"

    def add_region(self, points: Sequence[Sequence[float]], text: str = "") -> str:
        """Add a line drawn by hand; with an engine its text is read at once. Returns its id."""
        pts = [(clamp(x, 0, self.page.width), clamp(y, 0, self.page.height)) for x, y in points]
        if len(pts) == 4:
            pts = list(order_clockwise(pts))
        score = None
        if self.engine is not None and not text:
            # Read it before adding: one edit, so one undo takes the whole box back.
            found = self.engine.recognize(self.images.get(self.image_id), [pts])[0]
            text, score = found.text, found.score
            self.message = f"read: {found.text!r} (score {found.score:.2f})"
        region = Region(id=f"user-{uuid.uuid4().hex[:10]}", points=tuple(pts), text=text, score=score)
        self.store.add_region(self.image_id, region, who=self.who)
        self._load(keep=region.id)
        self.draw_mode = False
        return region.id

    def move_vertex(self, vertex: int, x: float, y: float, region_id: str | None = None) -> None:
        region = self._region(region_id)
        if not 0 <= vertex < len(region.points):
            raise UsageError(f"line {region.id!r} has no vertex {vertex + 1}")
        pts = list(region.points)
        pts[vertex] = (clamp(x, 0, self.page.width), clamp(y, 0, self.page.height))
        self._set_points(region, pts)
        self.vertex = vertex

    def nudge(self, dx: float, dy: float) -> None:
        """Move the selected vertex, or the whole box when none is selected."""
        region = self._region(None)
        pts = list(region.points)
        targets = [self.vertex] if self.vertex is not None else range(len(pts))
        for i in targets:
            x, y = pts[i]
            pts[i] = (clamp(x + dx, 0, self.page.width), clamp(y + dy, 0, self.page.height))
        self._set_points(region, pts)

    def select_vertex(self, vertex: int | None) -> None:
        region = self._region(None)
        self.vertex = vertex if vertex is not None and 0 <= vertex < len(region.points) else None

    def _set_points(self, region: Region, points: list[tuple[float, float]]) -> None:
        if tuple(points) == tuple(region.points):
            return
        self.store.set_points(self.image_id, region.id, points, who=self.who)
        self._load(keep=region.id)
        self.message = "box changed: Alt+R re-reads its text"

    def rerecognize(self, region_id: str | None = None) -> str:
        """Read the line's text again with the engine (after its box was moved or drawn)."""
        if self.engine is None:
            raise UsageError("no OCR engine given to the editor: Editor(store, engine=Services.from_env().engine('bundled'))")
        region = self._region(region_id)
        image = self.images.get(self.image_id)
        found = self.engine.recognize(image, [region.points])[0]
        self.set_text(found.text, region.id, score=found.score)
        self.message = f"re-read: {found.text!r} (score {found.score:.2f})"
        return found.text

    def undo(self) -> None:
        edit = self.store.undo(self.image_id)
        if edit is None:
            self.message = "nothing to undo on this image"
            return
        if edit.op == "set_state":
            self._reviewed.discard(self.image_id)
            if self.store.get_image(self.image_id).state == "reviewed":
                self._reviewed.add(self.image_id)
        self._load(keep=edit.region_id)
        self.vertex = None
        self.message = f"undone: {edit.op.replace('_', ' ')}"

    def toggle_zoom(self) -> None:
        self.zoom = not self.zoom

    def toggle_draw(self) -> None:
        self.draw_mode = not self.draw_mode
        self.message = "draw a box on the image (drag); Alt+N again to stop" if self.draw_mode else ""

    # -- commands from the page's script -------------------------------------------------------

    def handle(self, msg: dict[str, Any]) -> None:
        """Apply one command from the browser ({'cmd': ..., 'region': ..., ...}); see bridge.py."""
        cmd, rid = msg.get("cmd"), msg.get("region")
        self.message = ""
        if rid is not None and cmd not in ("select", "accept", "move"):
            self.select(rid)
            if msg.get("text") is not None:
                self.set_text(str(msg["text"]), rid)  # keep what was typed before leaving the line
        simple: dict[str, Callable[[], Any]] = {
            "next_line": self.next_line,
            "prev_line": self.prev_line,
            "next_image": self.next_image,
            "prev_image": self.prev_image,
            "illegible": self.mark_illegible,
            "delete": self.delete,
            "rerecognize": self.rerecognize,
            "undo": self.undo,
            "zoom": self.toggle_zoom,
            "draw": self.toggle_draw,
            "reviewed": self.mark_reviewed,
            "escape": lambda: self.select_vertex(None),
        }
        if cmd == "select" and rid is not None:
            self.select(rid)
        elif cmd == "accept":
            self.accept(msg.get("text"), rid)
        elif cmd == "move":
            self.move_vertex(int(msg["vertex"]), float(msg["x"]), float(msg["y"]), rid)
        elif cmd == "add":
            self.add_region(msg["points"])
        elif cmd == "nudge":
            self.nudge(float(msg.get("dx", 0)), float(msg.get("dy", 0)))
        elif cmd == "vertex":
            self.select_vertex(int(msg["vertex"]))
        elif cmd in simple:
            simple[cmd]()
