"""How big the detector sees a page: the cases where PaddleOCR's one fixed sizing reads blank or wrong.

PaddleOCR sizes every page the same way (short side at least 64 px, long side at most 4000), and its
DB detectors find text lines about 10 to 150 px tall. Measured on pages made for it
(tests/test_sizing.py), that loses three kinds of input:

- **tiny images**: a 22 px high line is upscaled to 64 px, its glyphs grow to ~50 px with wide gaps
  between words, and PP-OCRv5 mobile returns one box per word. Padding the image to 64 px instead
  (and scaling only a line below 24 px) keeps one box per line.
- **very large glyphs**: letters ~290 px tall read as nothing (PP-OCRv6 small) or as `-` and `C`
  (PP-OCRv5 mobile). When a page yields nothing or only fragments, a second detection pass sees it
  at most 640 px long, and the better reading wins.
- **small text**: lines under ~24 px tall (a 709x132 crop of a paper) lose their bold title. A
  second pass at up to 2.5x finds it; again the better reading wins.

"Better" is the recognized characters weighted by their scores: a pass that reads more text, more
surely, wins. Pages of ordinary text (lines 24 px and taller, some text found) take one pass only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

MIN_SIDE = 64  # PaddleOCR's own lower bound for the detector's input (limit_type "min", 64)
MIN_LINE_PX = 24  # a one-line image lower than this is scaled up to it before padding
SMALL_TEXT_PX = 24  # median line height below which an upscaled pass is tried
TARGET_TEXT_PX = 32  # the upscaled pass aims at lines this tall
MAX_UPSCALE = 2.5
LARGE_TEXT_SIDE = 640  # the long side of the downscaled pass for very large glyphs
MAX_DET_SIDE = 4000  # PaddleOCR's max_side_limit: an upscaled pass never goes beyond it
FRAGMENT_CHARS = 2  # a page whose every line reads this many characters or fewer is "only fragments"


@dataclass(frozen=True)
class Fitted:
    """An image as given to the pipeline: scaled by `scale`, then padded by (`left`, `top`)."""

    bgr: np.ndarray
    scale: float = 1.0
    left: int = 0
    top: int = 0

    def to_original(self, points: Sequence[Sequence[float]], width: int, height: int) -> list[tuple[float, float]]:
        """Points on the fitted image, back on the original (clamped to it)."""
        out = []
        for x, y in points:
            ox = (float(x) - self.left) / self.scale
            oy = (float(y) - self.top) / self.scale
            out.append((min(max(ox, 0.0), float(width)), min(max(oy, 0.0), float(height))))
        return out


def fit_small_image(bgr: np.ndarray) -> Fitted:
    """An image whose short side is under 64 px, padded to 64 with its own background (after
    scaling a line lower than 24 px up to 24); any other image as it is."""
    h, w = bgr.shape[:2]
    if min(h, w) >= MIN_SIDE:
        return Fitted(bgr)
    scale = max(1.0, MIN_LINE_PX / max(1, min(h, w)))
    if scale > 1.0:
        bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_CUBIC)
        h, w = bgr.shape[:2]
    pad_y, pad_x = max(0, MIN_SIDE - h), max(0, MIN_SIDE - w)
    top, left = pad_y // 2, pad_x // 2
    padded = cv2.copyMakeBorder(
        bgr, top, pad_y - top, left, pad_x - left, cv2.BORDER_CONSTANT, value=_border_color(bgr)
    )
    return Fitted(padded, scale, left, top)


def _border_color(bgr: np.ndarray) -> list[int]:
    """The median colour of the outermost pixels: the paper the text is on."""
    border = np.concatenate([bgr[0], bgr[-1], bgr[:, 0], bgr[:, -1]])
    return [int(c) for c in np.median(border, axis=0)]


@dataclass(frozen=True)
class Reading:
    """One pass's lines: outlines on the pipeline's input, texts and scores."""

    polys: tuple[Any, ...]
    texts: tuple[str, ...]
    scores: tuple[float, ...]
    result: Any = None  # the pipeline's own result (for the document-orientation angle)

    @classmethod
    def of(cls, result: Any) -> "Reading":
        return cls(tuple(result["rec_polys"]), tuple(map(str, result["rec_texts"])), tuple(map(float, result["rec_scores"])), result)

    @property
    def weight(self) -> float:
        """Characters read, weighted by how sure the recognizer is of each line."""
        return sum(len(t.strip()) * s for t, s in zip(self.texts, self.scores))

    @property
    def only_fragments(self) -> bool:
        return all(len(t.strip()) <= FRAGMENT_CHARS for t in self.texts)

    def median_line_height(self) -> float | None:
        heights = [line_height(p) for p in self.polys]
        return float(np.median(heights)) if heights else None


def line_height(poly: Any) -> float:
    """The short side of a line's minimum-area rectangle."""
    (_, _), (w, h), _ = cv2.minAreaRect(np.asarray(poly, dtype=np.float32).reshape(-1, 2))
    return float(min(w, h))


def second_pass(first: Reading, width: int, height: int, max_side: int = MAX_DET_SIDE) -> dict[str, Any] | None:
    """The detector sizing of a second pass worth trying after `first`, or None. `max_side`: the
    detector's cap on the long side (the profile's, else PaddleOCR's 4000).

    Returned as keyword arguments of the pipeline's predict()."""
    long_side, short_side = max(width, height), min(width, height)
    if first.only_fragments:
        if long_side <= LARGE_TEXT_SIDE:
            return None
        return {"text_det_limit_side_len": LARGE_TEXT_SIDE, "text_det_limit_type": "max"}
    median = first.median_line_height()
    if median is None or median >= SMALL_TEXT_PX:
        return None
    factor = min(MAX_UPSCALE, TARGET_TEXT_PX / max(median, 1.0), max_side / long_side)
    if factor < 1.25:
        return None
    return {"text_det_limit_side_len": int(round(short_side * factor)), "text_det_limit_type": "min"}


def better(first: Reading, second: Reading) -> Reading:
    """The reading that read more text, more surely; the first on a tie."""
    return second if second.weight > first.weight else first
