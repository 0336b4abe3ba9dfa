"""Drawing and reshaping boxes: the outline edits of `review.EditorModel` (a mixin: it works on
the model's store, page and current line), and the geometry they need. Any outline change makes
the line's text unchecked until it is re-read or accepted (the store's rule)."""

from __future__ import annotations

import math
import uuid
from typing import Sequence

from svtr_label.core.geometry import clamp, order_clockwise
from svtr_label.core.page import Region
from svtr_label.errors import UsageError


def rotated(points: Sequence[Sequence[float]], degrees: float) -> list[tuple[float, float]]:
    """The outline turned about its centre (clockwise on screen for positive degrees)."""
    cx = sum(p[0] for p in points) / len(points)
    cy = sum(p[1] for p in points) / len(points)
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    return [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c) for x, y in points]


def rotated_box(start: Sequence[float], end: Sequence[float], height: float) -> list[tuple[float, float]]:
    """A rectangle along a text line: from `start` to `end` on one long side, `height` across
    (positive: below the line start->end as seen on screen)."""
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0)
    if length < 1e-6:
        raise UsageError("a rotated box needs a start and an end point apart")
    nx, ny = -(y1 - y0) / length * height, (x1 - x0) / length * height
    return [(x0, y0), (x1, y1), (x1 + nx, y1 + ny), (x0 + nx, y0 + ny)]


class BoxEdits:
    """Outline edits; each is one store call (`expected_version`: the version the reviewer saw)."""

    def add_region(self, points: Sequence[Sequence[float]], text: str = "") -> str:
        """Add a line drawn by hand; with an engine its text is read at once (still unchecked:
        Enter accepts it). Returns its id."""
        pts = [(clamp(float(x), 0, self.page.width), clamp(float(y), 0, self.page.height)) for x, y in points]
        if len(pts) == 4:
            pts = list(order_clockwise(pts))
        score = None
        if self.engine is not None and not text:
            # Read it before adding: one edit, so one undo takes the whole box back.
            found = self.engine.recognize(self.images.get(self.image_id), [pts])[0]
            text, score = found.text, found.score
            self._say(f"read: {found.text!r} (score {found.score:.2f}): check it, Enter accepts")
        else:
            self._say("box added: type its text, Enter accepts")
        region = Region(id=f"user-{uuid.uuid4().hex[:10]}", points=tuple(pts), text=text, score=score)
        self.store.add_region(self.image_id, region, who=self.who)
        self._load(keep=region.id)
        self.draw_mode = ""
        self.remember()
        return region.id

    def set_points(self, points: Sequence[Sequence[float]], region_id: str | None = None, version: int | None = None) -> bool:
        """Give a line a new outline (dragged, nudged, turned, a corner added or removed); its
        text is unchecked until re-read or accepted. True when written."""
        region = self._region(region_id)
        pts = [(clamp(float(x), 0, self.page.width), clamp(float(y), 0, self.page.height)) for x, y in points]
        if len(pts) < 3:
            raise UsageError("a box keeps at least 3 corners")
        if tuple(pts) == tuple(region.points):
            return False
        expected = self._expected(region, version)
        self.store.set_points(self.image_id, region.id, pts, who=self.who, expected_version=expected)
        self._load(keep=region.id)
        self._wrote(region.id, expected)
        if self.vertex is not None and self.vertex >= len(pts):
            self.vertex = None
        self._say("box changed: its text is unchecked until re-read (Alt+R) or accepted (Enter)")
        return True

    def move_vertex(self, vertex: int, x: float, y: float, region_id: str | None = None, version: int | None = None) -> None:
        region = self._region(region_id)
        if not 0 <= vertex < len(region.points):
            raise UsageError(f"line {region.id!r} has no corner {vertex + 1}")
        pts = list(region.points)
        pts[vertex] = (x, y)
        self.set_points(pts, region.id, version)
        self.vertex = vertex

    def nudge(self, dx: float, dy: float) -> None:
        """Move the selected corner, or the whole box when none is selected."""
        region = self._region(None)
        pts = list(region.points)
        targets = [self.vertex] if self.vertex is not None else range(len(pts))
        for i in targets:
            x, y = pts[i]
            pts[i] = (x + dx, y + dy)
        self.set_points(pts, region.id)

    def rotate(self, degrees: float) -> None:
        region = self._region(None)
        self.set_points(rotated(region.points, degrees), region.id)

    def add_vertex(self, after: int | None = None, point: Sequence[float] | None = None) -> int:
        """Add a corner after corner `after` (default: the selected one, else the last), at
        `point` or halfway along that edge; it becomes the selected corner. Returns its index."""
        region = self._region(None)
        pts = list(region.points)
        i = (self.vertex if self.vertex is not None else len(pts) - 1) if after is None else after
        if not 0 <= i < len(pts):
            raise UsageError(f"line {region.id!r} has no corner {i + 1}")
        a, b = pts[i], pts[(i + 1) % len(pts)]
        new = (float(point[0]), float(point[1])) if point is not None else ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        pts.insert(i + 1, new)
        self.set_points(pts, region.id)
        self.vertex = i + 1
        return i + 1

    def remove_vertex(self, vertex: int | None = None) -> None:
        region = self._region(None)
        i = self.vertex if vertex is None else vertex
        if i is None:
            raise UsageError("select a corner first (1-9 on the picture, or click its dot)")
        if len(region.points) <= 3:
            raise UsageError("a box keeps at least 3 corners: delete the line instead (Alt+D)")
        pts = [p for k, p in enumerate(region.points) if k != i]
        self.set_points(pts, region.id)
        self.vertex = None

    def select_vertex(self, vertex: int | None) -> None:
        region = self._region(None)
        self.vertex = vertex if vertex is not None and 0 <= vertex < len(region.points) else None

    def set_draw(self, mode: str) -> None:
        """Start drawing ('box', 'quad', 'rotated'); the same mode again stops."""
        hints = {
            "box": "drag a box on the picture (Esc stops)",
            "quad": "click the box's four corners on the picture (Esc stops)",
            "rotated": "click where the line starts, where it ends, then how high it is (Esc stops)",
        }
        if mode not in hints:
            raise UsageError(f"unknown drawing mode {mode!r}")
        self.draw_mode = "" if self.draw_mode == mode else mode
        self._say(hints[mode] if self.draw_mode else "stopped drawing")

    def toggle_draw(self) -> None:
        self.set_draw("box")
