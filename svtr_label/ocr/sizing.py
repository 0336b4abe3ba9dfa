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

The other way round, **large text** costs detector time for nothing: the detector's work grows with
the pixels it sees, and it reads lines of ~20 px as surely as lines of 60. Before the first pass, the
height of the ink's connected components (a few ms on a 1024 px thumbnail) estimates the characters'
size; where they stay at least 12 px tall on a detector input at most 0.9x as long as the normal one,
the first pass runs at that smaller size (pages the detector sees under 1024 px keep the normal one).
The estimate errs low (a quartile of component heights, and noise, halftones or small print only
pull it down), and the reading is checked: if its lines are not comfortably tall at the size the
detector saw, or it found nothing or only fragments, the page takes the normal passes. Measured on
generated pages at 1x to 3x their size (benchmarks/bench_sizing.py; tests/test_sizing.py): the same
texts, 1.3x to 2.0x faster per page (1.3x to 2.6x before the bundled weights lost their subnormal
values); at 9 px the exact lines started to drop (0.992), so 12 px leaves a margin.

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
THUMB_SIDE = 1024  # the long side of the thumbnail whose ink components estimate the text's size
MIN_COMPONENTS = 20  # fewer ink components than this: no estimate, the page takes the normal sizing
LARGE_TEXT_CHAR_PX = 12  # the estimated character height a reduced detector input keeps
MAX_REDUCED_RATIO = 0.9  # a reduced input is at most this long relative to the normal one (>= 19 % fewer pixels)
MIN_REDUCED_SIDE = 640  # ... and never shorter than this on its long side
MIN_SIDE_TO_REDUCE = 1024  # pages the detector would see smaller than this keep the normal sizing
VERIFY_LINE_PX = 14  # the reduced reading holds when its short lines (10th percentile) are this tall as seen


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

    def line_heights(self) -> list[float]:
        return [line_height(p) for p in self.polys]

    def median_line_height(self) -> float | None:
        heights = self.line_heights()
        return float(np.median(heights)) if heights else None


def line_height(poly: Any) -> float:
    """The short side of a line's minimum-area rectangle."""
    (_, _), (w, h), _ = cv2.minAreaRect(np.asarray(poly, dtype=np.float32).reshape(-1, 2))
    return float(min(w, h))


def char_height(bgr: np.ndarray) -> float | None:
    """A low estimate of the characters' height in pixels: the lower quartile of the heights of the
    ink's connected components (Otsu threshold, ink = the minority), on a thumbnail at most 1024 px
    long. None when the page has too few components to tell."""
    h, w = bgr.shape[:2]
    t = min(1.0, THUMB_SIDE / max(h, w))
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    if t < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * t)), max(1, round(h * t))), interpolation=cv2.INTER_AREA)
    _, ink = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
    if cv2.countNonZero(ink) > ink.size // 2:  # light text on a dark ground
        ink = cv2.bitwise_not(ink)
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    heights, widths = stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_WIDTH]
    # Glyph-like: not specks, not rules, frames or pictures.
    glyphs = (heights >= 3) & (heights <= gray.shape[0] / 4) & (widths <= 5 * heights) & (heights <= 8 * widths)
    if int(glyphs.sum()) < MIN_COMPONENTS:
        return None
    return float(np.percentile(heights[glyphs], 25)) / t


@dataclass(frozen=True)
class ReducedSizing:
    """A smaller detector input for a page of large text: `scale` of the original's size."""

    scale: float
    long_side: int

    @property
    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the pipeline's predict()."""
        return {"text_det_limit_side_len": self.long_side, "text_det_limit_type": "max"}

    def holds(self, reading: Reading) -> bool:
        """The reading found real text whose short lines the detector saw comfortably tall."""
        if not reading.texts or reading.only_fragments:
            return False
        return float(np.percentile(reading.line_heights(), 10)) * self.scale >= VERIFY_LINE_PX


def large_text_sizing(bgr: np.ndarray, max_side: int = MAX_DET_SIDE) -> ReducedSizing | None:
    """The reduced detector input for a page whose text is large, or None (the normal sizing)."""
    h, w = bgr.shape[:2]
    long_side = max(h, w)
    normal = min(1.0, max_side / long_side)
    if long_side * normal < MIN_SIDE_TO_REDUCE:
        return None  # the detector is quick on it already, and the page reads as PaddleOCR reads it
    chars = char_height(bgr)
    if chars is None:
        return None
    scale = max(LARGE_TEXT_CHAR_PX / chars, MIN_REDUCED_SIDE / long_side)
    if scale > normal * MAX_REDUCED_RATIO:
        return None
    return ReducedSizing(scale, int(round(long_side * scale)))


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
