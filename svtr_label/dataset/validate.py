"""Checks on samples before they are written for training.

PaddleOCR's trainer drops some samples without a word (characters outside the dictionary,
texts longer than max_text_length) and misreads others (a tab cuts the label, a newline
splits the line). These checks find them first, so an export can fail, drop, or report them
loudly instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from svtr_label.core.geometry import is_self_intersecting, polygon_area
from svtr_label.core.page import Page, Region

# ch_SVTRv2_rec and PP-OCRv5 rec configs: max_text_length 25, minus the NRTR head's start and end tokens.
DEFAULT_MAX_TEXT_LENGTH = 23
MIN_AREA = 1.0  # px^2: below this a quad crops to nothing
# px: a recognition crop less high than this is a fragment nobody (and no recognizer) can read. The
# recognizers resize crops to 32-48 px high; an 8 px line is already blown up six times.
MIN_CROP_HEIGHT = 8
CONTROL_CHARS = {"\t": "tab", "\n": "newline", "\r": "carriage return"}


@dataclass(frozen=True)
class Issue:
    """One problem with one region (region_id '' for the whole image)."""

    image: str
    region_id: str
    kind: str  # out_of_dict, too_long, control_char, empty_text, small_crop, degenerate, self_intersecting
    message: str
    target: str  # 'rec' (the line cannot train the recognizer) or 'det' (the box cannot train the detector)

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class Report:
    issues: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    def __len__(self) -> int:
        return len(self.issues)

    def bad(self, target: str) -> set[tuple[str, str]]:
        """(image, region_id) pairs unfit for `target` ('det' issues make a line unfit for both)."""
        return {(i.image, i.region_id) for i in self.issues if i.target in (target, "det")}

    def table(self) -> str:
        """A plain-text table, one issue a row."""
        if not self.issues:
            return "no issues"
        rows = [("image", "region", "for", "kind", "message")] + [
            (i.image, i.region_id, i.target, i.kind, i.message) for i in self.issues
        ]
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        lines = ["  ".join(r[c].ljust(widths[c]) for c in range(4)) + "  " + r[4] for r in rows]
        lines.insert(1, "-" * min(120, sum(widths) + 8 + max(len(r[4]) for r in rows)))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


@dataclass(frozen=True)
class Rules:
    """What the target recognizer accepts. `dictionary` None skips the character check."""

    dictionary: frozenset[str] | None = None
    max_text_length: int | None = DEFAULT_MAX_TEXT_LENGTH


@dataclass(frozen=True)
class RecTarget:
    """The recognizer to fine-tune, as far as labels go: its dictionary file and characters, and
    the longest text its trainer keeps (None: not known from where they came)."""

    dict_bytes: bytes | None = None
    characters: tuple[str, ...] | None = None
    max_text_length: int | None = None
    source: str = ""

    def rules(self, max_text_length: int | None = None) -> Rules:
        """Rules for this target; an explicit `max_text_length` wins, then the target's, then the default."""
        limit = max_text_length or self.max_text_length or DEFAULT_MAX_TEXT_LENGTH
        return Rules(frozenset(self.characters) if self.characters else None, limit)


def parse_dictionary(text: str, use_space_char: bool = True) -> list[str]:
    """A PaddleOCR dictionary: one character a line; PaddleOCR adds the space itself when
    use_space_char is on (the default of the configs svtr-label targets)."""
    # split("\n"), not splitlines(): dictionaries hold characters splitlines() would break on.
    chars = [line.rstrip("\r") for line in text.split("\n") if line.rstrip("\r") != ""]
    return chars + [" "] if use_space_char else chars


def load_dictionary(path: str | Path) -> list[str]:
    return parse_dictionary(Path(path).read_text(encoding="utf-8"))


def text_issues(text: str, rules: Rules) -> list[tuple[str, str]]:
    """(kind, message) for each reason the recognizer cannot learn this text."""
    found = []
    if text.strip() == "":
        found.append(("empty_text", "empty text"))
    controls = sorted({name for ch, name in CONTROL_CHARS.items() if ch in text})
    if controls:
        found.append(("control_char", f"text holds a {', '.join(controls)}: it would cut or split the label line"))
    if rules.max_text_length is not None and len(text) > rules.max_text_length:
        found.append(("too_long", f"{len(text)} characters, the model accepts at most {rules.max_text_length}"))
    if rules.dictionary is not None:
        missing = sorted({ch for ch in text if ch not in rules.dictionary and ch not in CONTROL_CHARS})
        if missing:
            shown = " ".join(repr(c) for c in missing[:10])
            found.append(("out_of_dict", f"characters not in the dictionary: {shown}"))
    return found


def geometry_issues(points: Sequence[Sequence[float]]) -> list[tuple[str, str]]:
    """(kind, message) when the outline cannot be cropped or used as a detection box."""
    distinct = {(round(x, 3), round(y, 3)) for x, y in points}
    # Crossing first: a symmetric bow tie's signed areas cancel to 0, but its fault is the order.
    if len(distinct) >= 3 and is_self_intersecting(points):
        return [("self_intersecting", "outline crosses itself (corners out of order)")]
    if len(distinct) < 3 or polygon_area(points) < MIN_AREA:
        return [("degenerate", f"outline has area {polygon_area(points):.2f} px^2 ({len(distinct)} distinct points)")]
    return []


def crop_size(points: Sequence[Sequence[float]]) -> tuple[int, int]:
    """(width, height) of the recognition crop the export cuts for this outline, computed as
    PaddleX's CropByPolys (quad mode) sizes it: the minimum-area rectangle of the integer points,
    its longer left/right and top/bottom sides, turned a quarter when it is 1.5 times taller than wide."""
    import cv2
    import numpy as np

    from svtr_label.core.geometry import bounding_quad

    quad = np.asarray(bounding_quad(points), dtype=np.float32)
    box = sorted(cv2.boxPoints(cv2.minAreaRect(quad.astype(np.int32))), key=lambda p: p[0])
    a, d = (box[0], box[1]) if box[1][1] > box[0][1] else (box[1], box[0])
    b, c = (box[2], box[3]) if box[3][1] > box[2][1] else (box[3], box[2])
    width = int(max(np.linalg.norm(a - b), np.linalg.norm(c - d)))
    height = int(max(np.linalg.norm(a - d), np.linalg.norm(b - c)))
    if width > 0 and height / width >= 1.5:
        width, height = height, width
    return width, height


def crop_issues(points: Sequence[Sequence[float]], min_height: int = MIN_CROP_HEIGHT) -> list[tuple[str, str]]:
    """(kind, message) when the line's crop is too small to read (the trainer would learn a fragment)."""
    width, height = crop_size(points)
    if height < min_height:
        return [("small_crop", f"the crop is {width}x{height} px: under {min_height} px high it is too small to read")]
    return []


def region_issues(image: str, region: Region, rules: Rules, targets: Iterable[str] = ("det", "rec")) -> list[Issue]:
    targets = tuple(targets)
    out = [Issue(image, region.id, kind, msg, "det") for kind, msg in geometry_issues(region.points)]
    # '###' lines are detection-only: they never reach rec, so their text is not checked.
    if "rec" in targets and not region.illegible:
        out += [Issue(image, region.id, kind, msg, "rec") for kind, msg in text_issues(region.text, rules)]
        if not out or all(i.target == "rec" for i in out):  # a broken outline is reported as such, not as a crop
            out += [Issue(image, region.id, kind, msg, "rec") for kind, msg in crop_issues(region.points)]
    return out


def validate(samples: Iterable[tuple[str, Page]], rules: Rules, targets: Iterable[str] = ("det", "rec")) -> Report:
    """Check every region of every (image name, page)."""
    targets = tuple(targets)
    report = Report()
    for name, page in samples:
        for region in page.regions:
            report.issues.extend(region_issues(name, region, rules, targets))
    return report
