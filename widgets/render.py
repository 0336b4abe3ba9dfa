"""Pictures for the widgets: encoded page images, the export's line crops, page thumbnails with
their boxes. (The editor draws boxes and handles itself, as SVG in its ES module.)

Everything here is pure (arrays and pages in, bytes out) so it is tested without a browser.
Coordinates are page pixels, the same as `Page`/`Region`.
"""

from __future__ import annotations

import base64
import io
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


def bounds(points: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    """(x, y, width, height) of the axis-aligned rectangle around an outline."""
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


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


def export_crops(bgr: np.ndarray, regions: Sequence[Region]) -> list[np.ndarray]:
    """The recognition crops exactly as the export writes them (PaddleX's CropByPolys through
    `svtr_label.dataset.samples.crop_lines`): a rotated line comes out straight, a vertical one
    turned a quarter, as the trainer gets them. RGB."""
    from svtr_label.dataset.samples import crop_lines

    return [np.ascontiguousarray(c[:, :, ::-1]) if c.size else c for c in crop_lines(bgr, list(regions))]


def crop_png(rgb: np.ndarray, max_height: int = 96) -> bytes:
    """A crop for the screen: PNG (sharp text), never taller than `max_height` (a 2x screen shows
    it at up to 48 px high crisp); small crops are left as they are (the view scales them up)."""
    if rgb.size == 0:
        rgb = np.full((4, 4, 3), 255, dtype=np.uint8)
    img = Image.fromarray(rgb)
    if img.height > max_height:
        img = img.resize((max(1, round(img.width * max_height / img.height)), max_height), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False, compress_level=3)
    return buf.getvalue()


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


def placeholder(message: str, size: tuple[int, int] = (220, 140)) -> np.ndarray:
    """A grey card with a message, shown where an image cannot be read."""
    img = Image.new("RGB", size, (235, 235, 235))
    ImageDraw.Draw(img).multiline_text((8, 8), "\n".join(message[i : i + 32] for i in range(0, min(len(message), 160), 32)), fill=(120, 0, 0))
    return np.asarray(img)
