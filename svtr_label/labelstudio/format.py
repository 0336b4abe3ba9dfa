"""Label Studio's JSON, both ways: pages to prediction results, and results back to pages.

One text line is several results sharing one `id`: its shape (polygon or rotated rectangle,
with or without labels), optionally a `labels` result, and a per-region `textarea` with the
text. Coordinates are percent of the image as displayed (EXIF applied), clamped to [0, 100].

A multi-page task (a labeling config whose Image reads a list: `<Image valueList="$pages">`) holds
its pages' refs in one list, and every result says its page by `item_index` (0-based), as Label
Studio's editor writes it. Region ids are unique across the task's pages: the editor keys regions
by id alone.
"""

from __future__ import annotations

import logging
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence, cast

from svtr_label.core.geometry import (
    bounding_quad,
    from_percent,
    rotated_rect_corners,
    rotated_rect_from_quad,
    to_percent,
)
from svtr_label.core.page import Page, Region
from svtr_label.errors import ConfigError
from svtr_label.labelstudio.payloads import Result, ResultValue, Task

log = logging.getLogger(__name__)

SHAPE_TAGS = ("Polygon", "PolygonLabels", "Rectangle", "RectangleLabels")


def recommended_config(multipage: bool = False) -> str:
    """The OCR labeling config svtr-label is built for (shipped in the package); `multipage`: its
    form for multi-page tasks (`<Image valueList="$pages">`)."""
    name = "data/ocr_config_multipage.xml" if multipage else "data/ocr_config.xml"
    return resources.files("svtr_label").joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Tag:
    kind: str  # the XML tag, e.g. "PolygonLabels"
    name: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelConfig:
    """The tags of a labeling config that OCR results are written to."""

    image: str  # name of the Image tag
    data_key: str  # task data key the image comes from ($image -> "image"; valueList="$pages" -> "pages")
    textarea: str
    polygon: Tag | None = None
    rectangle: Tag | None = None
    labels: Tag | None = None
    multipage: bool = False  # the Image reads a list of pages (valueList): data[data_key] is a list of refs

    @classmethod
    def parse(cls, xml: str) -> "LabelConfig":
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as exc:
            raise ConfigError(f"the labeling config is not valid XML: {exc}") from None
        images = [el for el in root.iter("Image")]
        if not images:
            raise ConfigError('the labeling config has no <Image name="..." value="$..."> tag to put text regions on')
        image_el = images[0]
        image = image_el.get("name", "")
        # Label Studio reads attribute names in any case (its editor lower-cases them).
        value_list = next((v for k, v in image_el.attrib.items() if k.lower() == "valuelist"), None)
        value = value_list if value_list is not None else image_el.get("value", "")
        if not image or not value.startswith("$"):
            raise ConfigError('the <Image> tag needs name="..." and value="$key" (the task data key of the image), '
                              'or valueList="$key" for multi-page tasks')
        tags = [el for el in root.iter() if el.get("toName") in (image,) or image in (el.get("toName") or "").split(",")]

        def find(*kinds: str) -> Tag | None:
            for el in tags:
                if el.tag in kinds and el.get("name"):
                    return Tag(el.tag, el.get("name", ""), tuple(l.get("value", "") for l in el.iter("Label")))
            return None

        textareas = [el for el in tags if el.tag == "TextArea" and el.get("perRegion", "").lower() == "true"]
        if not textareas:
            raise ConfigError(
                f'the labeling config has no <TextArea perRegion="true" toName="{image}"> to hold each line\'s text; '
                "add one (see `svtr-label config`)"
            )
        polygon = find("PolygonLabels", "Polygon")
        rectangle = find("RectangleLabels", "Rectangle")
        if polygon is None and rectangle is None:
            raise ConfigError(
                f"the labeling config has no Polygon, PolygonLabels, Rectangle or RectangleLabels tag on {image!r}: "
                "text lines need a shape"
            )
        return cls(
            image=image,
            data_key=value[1:],
            textarea=textareas[0].get("name", ""),
            polygon=polygon,
            rectangle=rectangle,
            labels=find("Labels"),
            multipage=value_list is not None,
        )

    @property
    def default_label(self) -> str | None:
        for tag in (self.labels, self.polygon, self.rectangle):
            if tag is not None and tag.labels:
                return tag.labels[0]
        return None


# --- page -> results -------------------------------------------------------------------------

ShapePreference = Literal["polygon", "rectangle"]


def page_to_results(page: Page, config: LabelConfig, shape: ShapePreference | None = None,
                    item_index: int | None = None) -> list[Result]:
    """Prediction `result` list for a page. Each region's shape decides polygon or rectangle,
    unless `shape` forces one; a config with only one of the two gets that one. `item_index`:
    the page's index in a multi-page task, written on every result."""
    out: list[Result] = []
    for region in page.regions:
        out.extend(region_to_results(region, page.width, page.height, config, shape))
    if item_index is not None:
        out = [{**r, "item_index": item_index} for r in out]
    return out


def document_results(pages: Sequence[Page], config: LabelConfig, shape: ShapePreference | None = None) -> list[Result]:
    """The results of a multi-page task: each page's, with its `item_index`, region ids made unique
    across pages (two identical pages would otherwise give the same ids)."""
    out: list[Result] = []
    seen: set[str] = set()
    for index, page in enumerate(pages):
        regions = []
        for region in page.regions:
            rid = region.id if region.id not in seen else f"{region.id}-{index}"
            seen.add(rid)
            regions.append(region if rid == region.id else region.with_(id=rid))
        out.extend(page_to_results(page.with_(regions=tuple(regions)), config, shape, item_index=index))
    return out


def document_score(pages: Sequence[Page]) -> float:
    """Mean line score over every page (0 without lines), as Page.score is for one page."""
    scores = [r.score for page in pages for r in page.regions if r.score is not None]
    return float(sum(scores) / len(scores)) if scores else 0.0


def region_to_results(
    region: Region, width: int, height: int, config: LabelConfig, shape: ShapePreference | None = None
) -> list[Result]:
    tag = _shape_tag(config, shape or region.shape)
    if tag.kind.startswith("Polygon"):
        geometry: ResultValue = {"points": to_percent(region.points, width, height)}
    else:
        x, y, w, h, rotation = rotated_rect_from_quad(_quad(region))
        geometry = {
            "x": x * 100.0 / width,
            "y": y * 100.0 / height,
            "width": w * 100.0 / width,
            "height": h * 100.0 / height,
            "rotation": rotation,
        }
        # Clamp only what keeps the rectangle in place: an unrotated box that overhangs.
        if rotation == 0.0:
            geometry = _clamp_rect(geometry)
    label = region.label or config.default_label
    base: Result = {
        "id": region.id,
        "to_name": config.image,
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
    }
    if region.score is not None:
        base["score"] = float(region.score)
    results: list[Result] = []
    shape_value: dict[str, Any] = dict(geometry)
    kind = tag.kind.lower()
    if tag.labels and label is not None:
        shape_value[kind] = [label]
    results.append({**base, "from_name": tag.name, "type": kind, "value": cast(ResultValue, shape_value)})
    if config.labels is not None and label is not None:
        results.append({**base, "from_name": config.labels.name, "type": "labels", "value": {**geometry, "labels": [label]}})
    results.append({**base, "from_name": config.textarea, "type": "textarea", "value": {**geometry, "text": [region.text]}})
    return results


def _shape_tag(config: LabelConfig, shape: str) -> Tag:
    preferred, other = (config.polygon, config.rectangle) if shape == "polygon" else (config.rectangle, config.polygon)
    tag = preferred or other
    assert tag is not None  # LabelConfig.parse guarantees one
    return tag


def _quad(region: Region) -> Sequence[tuple[float, float]]:
    return region.points if len(region.points) == 4 else bounding_quad(region.points)


def _clamp_rect(g: ResultValue) -> ResultValue:
    x0, y0 = max(g["x"], 0.0), max(g["y"], 0.0)
    x1, y1 = min(g["x"] + g["width"], 100.0), min(g["y"] + g["height"], 100.0)
    return {**g, "x": x0, "y": y0, "width": max(x1 - x0, 0.0), "height": max(y1 - y0, 0.0)}


# --- results -> page -------------------------------------------------------------------------


def results_to_regions(results: Iterable[Result], width: int | None = None, height: int | None = None) -> list[Region]:
    """Regions from a prediction's or an annotation's results, grouped by result id.

    Rotated rectangles become their four corners. Results without any geometry (a
    classification of the whole image, say) are ignored.
    """
    grouped: dict[str, list[Result]] = {}
    for r in results:
        if "id" in r and isinstance(r.get("value"), dict):
            grouped.setdefault(str(r["id"]), []).append(r)
    regions = []
    for rid, parts in grouped.items():
        region = _region_from_parts(rid, parts, width, height)
        if region is not None:
            regions.append(region)
    return regions


def _region_from_parts(rid: str, parts: list[Result], width: int | None, height: int | None) -> Region | None:
    points = None
    shape = "polygon"
    text_parts: list[str] | None = None
    label = None
    score = None
    for r in parts:
        v = r["value"]
        if points is None:
            found = _outline(r, width, height)
            if found is not None:
                points, shape = found
        if "text" in v and text_parts is None:
            text_parts = [str(t) for t in (v["text"] if isinstance(v["text"], list) else [v["text"]])]
        for key in ("labels", "polygonlabels", "rectanglelabels"):
            if isinstance(v.get(key), list) and v.get(key):
                label = str(v[key][0])  # type: ignore[literal-required]
        if score is None and _finite(r.get("score")):
            score = float(r["score"])
    if points is None or len(points) < 3:
        return None
    # Several text entries in one region are kept apart by newlines: validation flags them.
    text = "\n".join(text_parts) if text_parts else ""
    return Region(id=rid, points=tuple(points), text=text, score=score, label=label, shape=shape)  # type: ignore[arg-type]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _outline(r: Result, width: int | None, height: int | None) -> tuple[list[tuple[float, float]], str] | None:
    """A result's outline in pixels and its shape, or None when it has none that is well formed:
    results come from the network, and a point that is not a pair of finite numbers is no point."""
    v = r["value"]
    w, h = r.get("original_width") or width or 0, r.get("original_height") or height or 0
    if not (_finite(w) and _finite(h) and w > 0 and h > 0):
        return None
    raw = v.get("points")
    if raw:
        if not isinstance(raw, list) or not all(isinstance(p, list) and len(p) == 2 and all(map(_finite, p)) for p in raw):
            log.warning("result %s: points are not pairs of numbers; ignored", r.get("id"))
            return None
        return from_percent(raw, int(w), int(h)), "polygon"
    box = [v.get(k) for k in ("x", "y", "width", "height")]
    if all(k in v for k in ("x", "y", "width", "height")):
        rotation = v.get("rotation") or 0.0
        if not all(map(_finite, [*box, rotation])):
            log.warning("result %s: rectangle values are not numbers; ignored", r.get("id"))
            return None
        x, y, bw, bh = (float(b) for b in box)  # type: ignore[arg-type]
        corners = rotated_rect_corners(x * w / 100.0, y * h / 100.0, bw * w / 100.0, bh * h / 100.0, float(rotation))
        return list(corners), "rectangle"
    return None


def item_index_of(result: Result) -> int | None:
    """The page a result is on: its `item_index`, 0 when it has none; None when it is not a page
    number (results come from the network)."""
    index = result.get("item_index", 0)
    if index is None:
        return 0
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        return None
    return index


def results_by_item(results: Iterable[Result]) -> dict[int, list[Result]]:
    """Results grouped by page (`item_index`; a result without one is on page 0). A result whose
    item_index is not a page number is left out, with a warning."""
    out: dict[int, list[Result]] = {}
    for r in results:
        index = item_index_of(r) if isinstance(r, dict) else None
        if index is None:
            log.warning("result %s: item_index %r is not a page number; ignored", r.get("id") if isinstance(r, dict) else None,
                        r.get("item_index") if isinstance(r, dict) else r)
            continue
        out.setdefault(index, []).append(r)
    return out


def image_size_of(results: Iterable[Result]) -> tuple[int, int] | None:
    for r in results:
        if r.get("original_width") and r.get("original_height"):
            return int(r["original_width"]), int(r["original_height"])
    return None


# --- tasks -----------------------------------------------------------------------------------


def make_task(page: Page, image_ref: str, config: LabelConfig, shape: ShapePreference | None = None) -> Task:
    """A Label Studio task with one prediction, importable as is. For a multi-page config: a
    task of one page (every task of a project has the data its config reads)."""
    if config.multipage:
        return make_document_task([page], [image_ref], config, shape)
    return {
        "data": {config.data_key: image_ref},
        "predictions": [
            {
                "model_version": page.model_version,
                "score": round(page.score, 6),
                "result": page_to_results(page, config, shape),
            }
        ],
    }


def make_document_task(pages: Sequence[Page], image_refs: Sequence[str], config: LabelConfig,
                       shape: ShapePreference | None = None) -> Task:
    """One multi-page task: `data[key]` lists the pages' refs, every result carries its page's
    `item_index`. Needs a multi-page config (`<Image valueList="$pages">`)."""
    if not config.multipage:
        raise ConfigError(f'a multi-page task needs a labeling config whose <Image> reads a list: valueList="${config.data_key}" '
                          "(see `svtr-label config --multipage`)")
    if len(pages) != len(image_refs) or not pages:
        raise ValueError(f"{len(pages)} pages for {len(image_refs)} refs")
    return {
        "data": {config.data_key: list(image_refs)},
        "predictions": [
            {
                "model_version": pages[0].model_version,
                "score": round(document_score(pages), 6),
                "result": document_results(pages, config, shape),
            }
        ],
    }


def load_config(path: str | os.PathLike | None, multipage: bool = False) -> LabelConfig:
    """The labeling config in `path`, else the recommended one (its multi-page form when asked)."""
    xml = Path(path).read_text(encoding="utf-8") if path else recommended_config(multipage)
    return LabelConfig.parse(xml)
