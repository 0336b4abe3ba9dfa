"""Triage many images: thumbnails with their boxes, filters (lowest line confidence, text,
model_version, review state), a random audit sample, and a summary with a score histogram.

Confidence alone misses errors (a wrong line can score ~1.0), so the audit sample draws
images at random whatever their scores. `BrowserModel` is the logic, `Browser` the view; the
view opens the filtered images in an `Editor` below the grid.
"""

from __future__ import annotations

import html
import random
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Sequence

import ipywidgets as w

from svtr_label.core.page import Page
from svtr_label.ocr.engine import OcrEngine
from svtr_label.store import IMAGE_STATES, ImageInfo, Store

from . import render
from .data import ImageCache
from .review import image_name
from .ticker import Ticker

SORTS = {"lowest score first": "score", "id": "id", "most edited first": "edits"}


@dataclass(frozen=True)
class Filters:
    state: str | None = None  # one of IMAGE_STATES, or None for all
    max_score: float | None = None  # images whose lowest line is at most this
    text: str = ""  # case-insensitive substring of any line
    model_version: str | None = None
    sort: str = "score"  # 'score', 'id' or 'edits'
    sample: int | None = None  # a random audit sample of this many (after the other filters)
    seed: int = 0


@dataclass(frozen=True)
class Summary:
    n_images: int
    by_state: dict[str, int]
    n_lines: int
    n_low_lines: int
    lines_checked: int
    histogram: list[int]  # line scores in bins of 1/len(histogram), the last bin holds 1.0

    def text(self) -> str:
        states = ", ".join(f"{s.replace('_', ' ')} {self.by_state.get(s, 0)}" for s in IMAGE_STATES)
        return (
            f"{self.n_images} images ({states}) · {self.n_lines} lines, {self.n_low_lines} low-confidence, "
            f"{self.lines_checked} checked"
        )


def histogram(scores: Sequence[float], bins: int = 10) -> list[int]:
    counts = [0] * bins
    for s in scores:
        counts[min(int(max(s, 0.0) * bins), bins - 1)] += 1
    return counts


class BrowserModel:
    """The filtered, sorted, paged list of store images."""

    def __init__(self, store: Store, page_size: int = 12, low_score: float = 0.8) -> None:
        self.store = store
        self.page_size = page_size
        self.low_score = low_score
        self.filters = Filters()
        self.page_number = 0
        self.reload()

    def reload(self) -> None:
        """Re-read the store (after edits elsewhere): infos and current pages of every image."""
        self.revision = self.store.revision()  # before the reads: a write after them shows in the next poll
        self.infos: list[ImageInfo] = self.store.images()
        self.pages: dict[int, Page] = {i.id: self.store.current_page(i.id) for i in self.infos}

    def changed(self) -> bool:
        """True when the store moved on since the last reload (another reviewer, another notebook)."""
        return self.store.revision() != self.revision

    def set_filters(self, **changes: Any) -> None:
        self.filters = replace(self.filters, **changes)
        self.page_number = 0

    def model_versions(self) -> list[str]:
        return sorted({v for i in self.infos for v in i.model_versions})

    def rows(self) -> list[ImageInfo]:
        f = self.filters
        rows = list(self.infos)
        if f.state:
            rows = [i for i in rows if i.state == f.state]
        if f.max_score is not None:
            rows = [i for i in rows if i.min_score is not None and i.min_score <= f.max_score]
        if f.model_version:
            rows = [i for i in rows if f.model_version in i.model_versions]
        if f.text:
            needle = f.text.casefold()
            rows = [i for i in rows if any(needle in r.text.casefold() for r in self.pages[i.id].regions)]
        if f.sample is not None:
            # Sorted ids first: the same seed gives the same sample whatever order the store lists.
            pool = sorted(rows, key=lambda i: i.id)
            rows = random.Random(f.seed).sample(pool, min(f.sample, len(pool)))
        return sorted(rows, key=self._sort_key)

    def _sort_key(self, info: ImageInfo) -> tuple:
        if self.filters.sort == "score":
            return (info.min_score if info.min_score is not None else 2.0, info.id)
        if self.filters.sort == "edits":
            return (-info.n_edits, info.id)
        return (info.id,)

    def n_pages(self) -> int:
        return max(1, -(-len(self.rows()) // self.page_size))

    def visible(self) -> list[ImageInfo]:
        start = self.page_number * self.page_size
        return self.rows()[start : start + self.page_size]

    def turn(self, step: int) -> None:
        self.page_number = min(max(self.page_number + step, 0), self.n_pages() - 1)

    def summary(self, rows: Sequence[ImageInfo] | None = None, bins: int = 10) -> Summary:
        rows = self.infos if rows is None else rows
        scores, checked = [], 0
        for info in rows:
            scores += [r.score for r in self.pages[info.id].regions if r.score is not None]
            checked += len(self.store.region_states(info.id))
        return Summary(
            n_images=len(rows),
            by_state=dict(Counter(i.state for i in rows)),
            n_lines=sum(len(self.pages[i.id].regions) for i in rows),
            n_low_lines=sum(s < self.low_score for s in scores),
            lines_checked=checked,
            histogram=histogram(scores, bins),
        )


# --- the view --------------------------------------------------------------------------------


def histogram_svg(counts: Sequence[int], low_score: float, width: int = 320, height: int = 70) -> str:
    """Bars of line scores 0..1; bins under the low-score mark are red."""
    top = max(counts) or 1
    bar = width / len(counts)
    parts = []
    for k, c in enumerate(counts):
        h = (height - 14) * c / top
        colour = render.COLOURS["low"] if (k + 1) / len(counts) <= low_score + 1e-9 else render.COLOURS["ok"]
        parts.append(
            f'<rect x="{k * bar + 1:.1f}" y="{height - 14 - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{k / len(counts):.1f}–{(k + 1) / len(counts):.1f}: {c} lines</title></rect>"
        )
    labels = f'<text x="0" y="{height - 2}" font-size="10">0</text><text x="{width - 8}" y="{height - 2}" font-size="10">1</text>'
    return f'<svg width="{width}" height="{height}">{"".join(parts)}{labels}</svg>'


class Browser(w.VBox):
    """Thumbnails of a store's images with filters; 'review' opens the filtered list in an Editor."""

    def __init__(
        self,
        store: Store,
        engine: OcrEngine | None = None,
        who: str | None = None,
        page_size: int = 12,
        low_score: float = 0.8,
        thumb_size: int = 220,
        poll_ms: int = 2000,
    ) -> None:
        self.model = BrowserModel(store, page_size, low_score)
        self.engine, self.who, self.thumb_size = engine, who, thumb_size
        self.images = ImageCache(store, size=page_size * 2)
        self._thumbs: dict[tuple, bytes] = {}
        self.editor_area = w.VBox()
        self.summary = w.HTML()
        self.grid = w.GridBox(layout=w.Layout(grid_template_columns=f"repeat(auto-fill, {thumb_size + 10}px)", grid_gap="6px"))
        self.pager = w.HTML()
        # Counts and thumbnails follow the store by themselves (other reviewers, the editor below).
        self.ticker = Ticker(self.poll, poll_ms)
        super().__init__([self._controls(), self.summary, self.grid, self._pager_box(), self.editor_area, self.ticker])
        self.add_class("svtr-browser")
        self.refresh()

    def _controls(self) -> w.Box:
        f = self.model.filters
        # No value= for the 'any' choices: ipywidgets shows a None value as an empty box.
        self.state = w.Dropdown(options=[("any state", None)] + [(s.replace("_", " "), s) for s in IMAGE_STATES], description="state")
        self.max_score = w.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="lowest ≤", readout_format=".2f")
        self.search = w.Text(placeholder="text in any line", description="search", continuous_update=False)
        self.version = w.Dropdown(options=[("any model", None)] + [(v, v) for v in self.model.model_versions()], description="model")
        self.sort = w.Dropdown(options=list(SORTS.items()), value=f.sort, description="sort")
        self.sample = w.IntText(value=10, description="audit n", layout=w.Layout(width="160px"))
        audit = w.ToggleButton(
            description="random audit sample", tooltip="images drawn at random: confidence alone misses errors", layout=w.Layout(width="auto")
        )
        for widget in (self.state, self.max_score, self.search, self.version, self.sort):
            widget.observe(lambda _c: self._apply(), names="value")
        audit.observe(lambda c: self._apply(sample=c["new"]), names="value")
        self.audit = audit
        self.sample.observe(lambda _c: self._apply(), names="value")
        return w.VBox([
            w.HBox([self.state, self.version, self.sort], layout=w.Layout(flex_flow="row wrap")),
            w.HBox([self.max_score, self.search], layout=w.Layout(flex_flow="row wrap")),
            w.HBox([audit, self.sample]),
        ])

    def _pager_box(self) -> w.HBox:
        prev, nxt = w.Button(description="◀ previous"), w.Button(description="next ▶")
        review = w.Button(description="review these in the editor", button_style="primary", layout=w.Layout(width="auto"))
        prev.on_click(lambda _b: self._turn(-1))
        nxt.on_click(lambda _b: self._turn(1))
        review.on_click(lambda _b: self.open_editor())
        reload = w.Button(description="reload", tooltip="re-read the store (after reviewing)")
        reload.on_click(lambda _b: self.reload())
        return w.HBox([prev, self.pager, nxt, review, reload])

    def reload(self) -> None:
        self.model.reload()
        self.refresh()

    def poll(self) -> bool:
        """Reload when the store changed; True when it did."""
        if not self.model.changed():
            return False
        self.reload()
        return True

    def _apply(self, sample: bool | None = None) -> None:
        use_sample = self.audit.value if sample is None else sample
        self.model.set_filters(
            state=self.state.value,
            max_score=None if self.max_score.value >= 1.0 else self.max_score.value,
            text=self.search.value.strip(),
            model_version=self.version.value,
            sort=self.sort.value,
            sample=max(self.sample.value, 1) if use_sample else None,
        )
        self.refresh()

    def _turn(self, step: int) -> None:
        self.model.turn(step)
        self.refresh()

    def refresh(self) -> None:
        m = self.model
        rows = m.rows()
        s = m.summary(rows)
        self.summary.value = (
            f"<div><b>shown:</b> {html.escape(s.text())}<br><b>store:</b> {html.escape(m.summary().text())}</div>"
            f"<div>line scores of the images shown (red: below {m.low_score:.2f})<br>{histogram_svg(s.histogram, m.low_score)}</div>"
        )
        self.grid.children = [self._card(info) for info in m.visible()]
        self.pager.value = f"&nbsp;page {m.page_number + 1}/{m.n_pages()} · {len(rows)} images&nbsp;"

    def _card(self, info: ImageInfo) -> w.VBox:
        picture = w.Image(value=self._thumbnail(info), format="jpeg", layout=w.Layout(max_width=f"{self.thumb_size}px"))
        low = "–" if info.min_score is None else f"{info.min_score:.2f}"
        name = image_name(info.ref, info.id)
        caption = w.HTML(
            f'<div style="font-size:11px;line-height:1.3"><b>#{info.id} {html.escape(name)}</b><br>'
            f"{info.n_lines} lines · lowest {low} · {info.state.replace('_', ' ')} · {info.n_edits} edits</div>"
        )
        open_button = w.Button(description="open", layout=w.Layout(width="80px"))
        open_button.on_click(lambda _b, image_id=info.id: self.open_editor(image_id))
        return w.VBox([picture, caption, open_button], layout=w.Layout(border="1px solid #ddd", padding="4px"))

    def _thumbnail(self, info: ImageInfo) -> bytes:
        key = (info.id, info.n_edits, info.state)
        if key not in self._thumbs:
            try:
                rgb = self.images.get(info.id).rgb()
            except Exception as exc:  # a missing file must not break the whole grid
                return render.encode(render.placeholder(str(exc)), "JPEG")
            states = self.model.store.region_states(info.id)
            self._thumbs[key] = render.thumbnail(rgb, self.model.pages[info.id], self.thumb_size, states, self.model.low_score)
        return self._thumbs[key]

    def open_editor(self, image_id: int | None = None) -> Any:
        """Review the images shown (all pages of them, in this order) from `image_id` on."""
        from .editor import Editor, EditorModel

        ids = [i.id for i in self.model.rows()]
        if not ids:
            return None
        model = EditorModel(self.model.store, ids, self.engine, self.who, self.model.low_score)
        if image_id is not None and image_id in ids:
            model.go_to_image(ids.index(image_id))
        for child in self.editor_area.children:
            child.close()
        editor = Editor(model)
        self.editor_area.children = [editor]
        return editor
