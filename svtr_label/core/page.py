"""The data every part of svtr-label exchanges: a page and its text regions.

Pixels, not percent: the Label Studio format converts at its own boundary.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Sequence

from svtr_label.core.geometry import Point, as_points

IGNORE_TEXT = "###"  # PaddleOCR's mark for an illegible region: kept for detection, never for recognition

Shape = Literal["polygon", "rectangle"]


@dataclass(frozen=True)
class Region:
    """One text line: its outline in pixels (clockwise from top-left) and its text."""

    id: str
    points: tuple[Point, ...]
    text: str
    score: float | None = None
    label: str | None = None
    shape: Shape = "polygon"

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", tuple(as_points(self.points)))
        if len(self.points) < 3:
            raise ValueError(f"region {self.id!r}: needs at least 3 points, got {len(self.points)}")

    @property
    def illegible(self) -> bool:
        return self.text == IGNORE_TEXT

    def with_(self, **changes: Any) -> "Region":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["points"] = [list(p) for p in self.points]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Region":
        return cls(
            id=str(d["id"]),
            points=tuple(tuple(p) for p in d["points"]),
            text=str(d.get("text", "")),
            score=None if d.get("score") is None else float(d["score"]),
            label=d.get("label"),
            shape=d.get("shape", "polygon"),
        )


@dataclass(frozen=True)
class Page:
    """An image's size (after EXIF orientation), content hash, and its regions."""

    width: int
    height: int
    sha256: str
    regions: tuple[Region, ...] = field(default_factory=tuple)
    model_version: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", tuple(self.regions))

    @property
    def score(self) -> float:
        """Mean line score; 0 for an empty page (what Label Studio sorts predictions by)."""
        scores = [r.score for r in self.regions if r.score is not None]
        return float(sum(scores) / len(scores)) if scores else 0.0

    def with_(self, **changes: Any) -> "Page":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "sha256": self.sha256,
            "model_version": self.model_version,
            "source": self.source,
            "regions": [r.to_dict() for r in self.regions],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Page":
        return cls(
            width=int(d["width"]),
            height=int(d["height"]),
            sha256=str(d.get("sha256", "")),
            regions=tuple(Region.from_dict(r) for r in d.get("regions", [])),
            model_version=str(d.get("model_version", "")),
            source=str(d.get("source", "")),
        )


def region_id(sha256: str, index: int) -> str:
    """A stable id for the index-th predicted line of an image, so reruns give identical files."""
    return hashlib.sha1(f"{sha256}:{index}".encode()).hexdigest()[:10]


def regions_from_lines(
    sha256: str, polys: Sequence[Sequence[Sequence[float]]], texts: Sequence[str], scores: Sequence[float]
) -> tuple[Region, ...]:
    return tuple(
        Region(id=region_id(sha256, i), points=tuple(as_points(poly)), text=str(text), score=float(score))
        for i, (poly, text, score) in enumerate(zip(polys, texts, scores))
    )
