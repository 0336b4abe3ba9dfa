"""Pictures for the widgets: encoded images, line crops, page thumbnails with their boxes, and
the SVG overlay the editor draws quads and vertex handles with.

Everything here is pure (arrays and pages in, bytes or markup out) so it is tested without a
browser. Coordinates are page pixels, the same as `Page`/`Region`.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from svtr_label.core.page import Page, Region

# Box colours by review state: the eye finds red (low score) first, green is done.
COLOURS = {
    "low": "#e53935",
    "ok": "#1e88e5",
    "accepted": "#43a047",
    "illegible": "#9e9e9e",
    "current": "#ffb300",
}


@dataclass(frozen=True)
class ViewBox:
    """The part of the page shown, in page pixels."""

    x: float
    y: float
    width: float
    height: float

    def attr(self) -> str:
        return f"{self.x:.1f} {self.y:.1f} {self.width:.1f} {self.height:.1f}"

    def clip(self, page_width: int, page_height: int) -> "ViewBox":
        """Integer box inside the page (crops are cut with it)."""
        x0 = int(max(0, np.floor(self.x)))
        y0 = int(max(0, np.floor(self.y)))
        x1 = int(min(page_width, np.ceil(self.x + self.width)))
        y1 = int(min(page_height, np.ceil(self.y + self.height)))
        return ViewBox(x0, y0, max(1, x1 - x0), max(1, y1 - y0))


def whole_page(width: int, height: int) -> ViewBox:
    return ViewBox(0, 0, width, height)


def bounds(points: Sequence[Sequence[float]]) -> ViewBox:
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return ViewBox(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


def zoom_box(points: Sequence[Sequence[float]], page_width: int, page_height: int, context: float = 1.5) -> ViewBox:
    """A window around a region with room for its neighbours, at the page's aspect ratio or wider."""
    b = bounds(points)
    w = max(b.width * (1 + 2 * context / 3), 200.0)
    h = max(b.height * (1 + 2 * context), w * 0.35)
    cx, cy = b.x + b.width / 2, b.y + b.height / 2
    w, h = min(w, page_width), min(h, page_height)
    x = min(max(cx - w / 2, 0.0), page_width - w)
    y = min(max(cy - h / 2, 0.0), page_height - h)
    return ViewBox(x, y, w, h).clip(page_width, page_height)


# --- bitmaps ---------------------------------------------------------------------------------


def encode(rgb: np.ndarray, fmt: str = "JPEG", max_side: int | None = None, quality: int = 85) -> bytes:
    """Encode an RGB array; JPEG for page views (small), PNG for crops (sharp text)."""
    img = Image.fromarray(np.ascontiguousarray(rgb))
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.LANCZOS)
    buf = io.BytesIO()
    if fmt.upper() == "JPEG":
        img.convert("RGB").save(buf, "JPEG", quality=quality)
    else:
        img.save(buf, fmt.upper())
    return buf.getvalue()


def data_uri(data: bytes, fmt: str = "JPEG") -> str:
    mime = "image/jpeg" if fmt.upper() == "JPEG" else f"image/{fmt.lower()}"
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def cut(rgb: np.ndarray, box: ViewBox) -> np.ndarray:
    box = box.clip(rgb.shape[1], rgb.shape[0])
    return rgb[int(box.y) : int(box.y + box.height), int(box.x) : int(box.x + box.width)]


def line_crop(rgb: np.ndarray, points: Sequence[Sequence[float]], pad: int = 4) -> np.ndarray:
    """The axis-aligned crop around a region (what a reviewer compares the text with)."""
    b = bounds(points)
    return cut(rgb, ViewBox(b.x - pad, b.y - pad, b.width + 2 * pad, b.height + 2 * pad))


def region_state(region: Region, accepted: bool, low_score: float) -> str:
    if region.illegible:
        return "illegible"
    if accepted:
        return "accepted"
    if region.score is not None and region.score < low_score:
        return "low"
    return "ok"


def thumbnail(
    rgb: np.ndarray,
    page: Page,
    max_side: int = 260,
    accepted: Iterable[str] = (),
    low_score: float = 0.8,
) -> bytes:
    """A small JPEG of the page with its boxes drawn in (the browser grid shows dozens of these)."""
    img = Image.fromarray(np.ascontiguousarray(rgb))
    scale = min(1.0, max_side / max(img.size))
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    draw = ImageDraw.Draw(img)
    done = set(accepted)
    for region in page.regions:
        colour = COLOURS[region_state(region, region.id in done, low_score)]
        pts = [(x * scale, y * scale) for x, y in region.points]
        draw.polygon(pts, outline=colour, width=2)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=80)
    return buf.getvalue()


# --- SVG -------------------------------------------------------------------------------------


def _pts(points: Sequence[Sequence[float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def base_svg(image_uri: str, image_box: ViewBox, view: ViewBox, display_width: int) -> str:
    """The bitmap layer: the (cropped) page image placed at its page coordinates."""
    height = round(display_width * view.height / view.width)
    return (
        f'<svg class="svtr-base" viewBox="{view.attr()}" width="{display_width}" height="{height}" '
        f'preserveAspectRatio="xMinYMin meet" style="display:block">'
        f'<image href="{image_uri}" x="{image_box.x}" y="{image_box.y}" width="{image_box.width}" '
        f'height="{image_box.height}" preserveAspectRatio="none"/></svg>'
    )


def overlay_svg(
    uid: str,
    regions: Sequence[Region],
    view: ViewBox,
    display_width: int,
    current: str | None = None,
    accepted: Iterable[str] = (),
    low_score: float = 0.8,
    vertex: int | None = None,
    mode: str = "edit",
) -> str:
    """The interactive layer: one polygon per region, vertex handles on the current one.

    The JS in `bridge.py` reads data-rid / data-v from these elements to select, drag and draw.
    """
    height = round(display_width * view.height / view.width)
    px = view.width / display_width  # one screen pixel in page units: strokes stay 2px at any zoom
    done = set(accepted)
    parts = []
    for region in regions:
        state = "current" if region.id == current else region_state(region, region.id in done, low_score)
        width = 3 if state == "current" else 2
        fill = "rgba(255,179,0,0.12)" if state == "current" else "rgba(0,0,0,0)"
        parts.append(
            f'<polygon class="svtr-quad svtr-{state}" data-rid="{html.escape(region.id)}" points="{_pts(region.points)}" '
            f'fill="{fill}" stroke="{COLOURS[state]}" stroke-width="{width * px:.2f}" style="cursor:pointer"/>'
        )
    by_id = {r.id: r for r in regions}
    if current in by_id:
        for i, (x, y) in enumerate(by_id[current].points):
            r = (7 if i == vertex else 5) * px
            colour = "#d81b60" if i == vertex else "#ffffff"
            parts.append(
                f'<circle class="svtr-vertex" data-rid="{html.escape(current)}" data-v="{i}" cx="{x:.1f}" cy="{y:.1f}" '
                f'r="{r:.2f}" fill="{colour}" stroke="#000" stroke-width="{px:.2f}" style="cursor:move"/>'
            )
    cursor = "crosshair" if mode == "draw" else "default"
    return (
        f'<svg class="svtr-overlay" data-uid="{uid}" data-mode="{mode}" viewBox="{view.attr()}" '
        f'width="{display_width}" height="{height}" preserveAspectRatio="xMinYMin meet" '
        f'style="display:block;cursor:{cursor}" onmousedown="window.svtrLabel&&svtrLabel.down(event,this)">'
        + "".join(parts)
        + "</svg>"
    )


def placeholder(message: str, size: tuple[int, int] = (220, 140)) -> np.ndarray:
    """A grey card with a message, shown where an image cannot be read."""
    img = Image.new("RGB", size, (235, 235, 235))
    ImageDraw.Draw(img).multiline_text((8, 8), "\n".join(message[i : i + 32] for i in range(0, min(len(message), 160), 32)), fill=(120, 0, 0))
    return np.asarray(img)
