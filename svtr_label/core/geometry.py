"""Quadrilateral geometry shared by the engine, the Label Studio format and the exporters.

Conventions: pixel coordinates, x to the right, y down. A quad is four (x, y) points
clockwise on screen, starting at the top-left corner, the order PaddleOCR's detection
labels use.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

Point = tuple[float, float]
Quad = tuple[Point, Point, Point, Point]


def as_points(points: Sequence[Sequence[float]]) -> list[Point]:
    """Plain float tuples from any sequence of pairs (lists, numpy rows)."""
    return [(float(p[0]), float(p[1])) for p in points]


def order_clockwise(points: Sequence[Sequence[float]]) -> Quad:
    """Order four corners clockwise from the top-left one.

    The top-left corner is the one with the smallest x + y; the rest follow by angle
    around the centroid, so rotated and skewed quads keep their shape.
    """
    pts = as_points(points)
    if len(pts) != 4:
        raise ValueError(f"a quad needs 4 points, got {len(pts)}")
    cx = sum(p[0] for p in pts) / 4
    cy = sum(p[1] for p in pts) / 4
    # On screen (y down) increasing atan2 angle runs clockwise.
    by_angle = sorted(pts, key=lambda p: math.atan2(p[1] - cy, p[0] - cx))
    start = min(range(4), key=lambda i: (by_angle[i][0] + by_angle[i][1], by_angle[i][0]))
    ordered = by_angle[start:] + by_angle[:start]
    return tuple(ordered)  # type: ignore[return-value]


def rotated_rect_corners(x: float, y: float, width: float, height: float, rotation_deg: float) -> Quad:
    """Corners of a rectangle rotated clockwise by `rotation_deg` about its top-left corner.

    This is Label Studio's `rectanglelabels` convention: (x, y) is the top-left corner before
    rotation and stays fixed.
    """
    a = math.radians(rotation_deg)
    ca, sa = math.cos(a), math.sin(a)
    tl = (x, y)
    tr = (x + width * ca, y + width * sa)
    br = (tr[0] - height * sa, tr[1] + height * ca)
    bl = (x - height * sa, y + height * ca)
    return (tl, tr, br, bl)


def rotated_rect_from_quad(quad: Sequence[Sequence[float]]) -> tuple[float, float, float, float, float]:
    """The rectangle (x, y, width, height, rotation_deg) that best fits a quad.

    A quad that already is a rectangle comes back exactly; any other gets its minimum-area
    bounding rectangle, whose first corner is the one nearest the quad's first corner so the
    reading direction is kept.
    """
    pts = np.asarray(as_points(quad), dtype=np.float64)
    if _is_rectangle(pts):
        corners = pts
    else:
        corners = _min_area_rect_corners(pts)
        start = int(np.argmin(np.linalg.norm(corners - pts[0], axis=1)))
        corners = np.roll(corners, -start, axis=0)
    tl, tr, _, bl = corners
    width = float(np.linalg.norm(tr - tl))
    height = float(np.linalg.norm(bl - tl))
    rotation = math.degrees(math.atan2(tr[1] - tl[1], tr[0] - tl[0])) % 360.0
    if math.isclose(rotation, 360.0, abs_tol=1e-9):
        rotation = 0.0
    return float(tl[0]), float(tl[1]), width, height, rotation


def _is_rectangle(pts: np.ndarray, tol: float = 1e-3) -> bool:
    edges = np.roll(pts, -1, axis=0) - pts
    lengths = np.linalg.norm(edges, axis=1)
    if np.any(lengths < 1e-9):
        return False
    unit = edges / lengths[:, None]
    dots = np.abs(np.sum(unit * np.roll(unit, -1, axis=0), axis=1))
    return bool(np.all(dots < tol))


def _min_area_rect_corners(pts: np.ndarray) -> np.ndarray:
    """Clockwise corners of the minimum-area rectangle around `pts` (rotating calipers)."""
    hull = _convex_hull(pts)
    best: tuple[float, np.ndarray] | None = None
    for i in range(len(hull)):
        edge = hull[(i + 1) % len(hull)] - hull[i]
        norm = np.linalg.norm(edge)
        if norm < 1e-12:
            continue
        u = edge / norm
        v = np.array([-u[1], u[0]])
        pu, pv = hull @ u, hull @ v
        area = (pu.max() - pu.min()) * (pv.max() - pv.min())
        if best is None or area < best[0] - 1e-9:
            corners = np.array([
                u * pu.min() + v * pv.min(),
                u * pu.max() + v * pv.min(),
                u * pu.max() + v * pv.max(),
                u * pu.min() + v * pv.max(),
            ])
            best = (area, corners)
    if best is None:  # all points equal
        return np.repeat(pts[:1], 4, axis=0)
    return np.asarray(order_clockwise(best[1]), dtype=np.float64)


def _convex_hull(pts: np.ndarray) -> np.ndarray:
    unique = sorted(set(map(tuple, pts.tolist())))
    if len(unique) <= 2:
        return np.asarray(unique, dtype=np.float64)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in unique:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in reversed(unique):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.asarray(lower[:-1] + upper[:-1], dtype=np.float64)


def bounding_quad(points: Sequence[Sequence[float]]) -> Quad:
    """A quad for any polygon: itself when it has four corners, else its minimum-area rectangle."""
    pts = as_points(points)
    if len(pts) == 4:
        return order_clockwise(pts)
    return order_clockwise(_min_area_rect_corners(np.asarray(pts, dtype=np.float64)))


def polygon_area(points: Sequence[Sequence[float]]) -> float:
    """Unsigned area (shoelace formula)."""
    pts = as_points(points)
    s = 0.0
    for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):
        s += x1 * y2 - x2 * y1
    return abs(s) / 2.0


def is_self_intersecting(points: Sequence[Sequence[float]]) -> bool:
    """True when two non-adjacent edges of the polygon cross (a 'bow tie')."""
    pts = as_points(points)
    n = len(pts)
    edges = [(pts[i], pts[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue
            if _segments_cross(*edges[i], *edges[j]):
                return True
    return False


def _segments_cross(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    def orient(a, b, c):
        v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        return 0 if abs(v) < 1e-12 else (1 if v > 0 else -1)

    o1, o2 = orient(p1, p2, q1), orient(p1, p2, q2)
    o3, o4 = orient(q1, q2, p1), orient(q1, q2, p2)
    return o1 * o2 < 0 and o3 * o4 < 0


def clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def to_percent(points: Sequence[Sequence[float]], width: int, height: int) -> list[list[float]]:
    """Pixel points to Label Studio percent coordinates, clamped to the image."""
    return [[clamp(x * 100.0 / width, 0.0, 100.0), clamp(y * 100.0 / height, 0.0, 100.0)] for x, y in as_points(points)]


def from_percent(points: Sequence[Sequence[float]], width: int, height: int) -> list[Point]:
    return [(x * width / 100.0, y * height / 100.0) for x, y in as_points(points)]


def quad_iou(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> float:
    """Intersection over union of two polygons (shapely; invalid polygons are buffered to valid)."""
    from shapely.geometry import Polygon

    pa, pb = Polygon(as_points(a)), Polygon(as_points(b))
    if not pa.is_valid:
        pa = pa.buffer(0)
    if not pb.is_valid:
        pb = pb.buffer(0)
    union = pa.union(pb).area
    return float(pa.intersection(pb).area / union) if union > 0 else 0.0
