"""Review one image at a time: the page in a zoomable viewport with its boxes, and every line as
the crop the export writes beside its editable text.

`Editor` is an anywidget: its front end is the ES module `static/editor.js` (and
`static/editor.css`), shipped in the package. Keys, drags, nudges, zoom and pan run in the
browser; what changes the store arrives here as a message (`model.send`) and goes through
`review.EditorModel`, whose state comes back as traitlets. The page image is sent once per image;
crops are sent as binary messages, only for lines whose box changed.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import anywidget
import numpy as np
import traitlets

from svtr_label.core.page import Region
from svtr_label.dataset.validate import Rules, crop_size
from svtr_label.errors import SvtrLabelError
from svtr_label.ocr.engine import OcrEngine
from svtr_label.store import Store

from . import render
from .keys import GESTURES, help_rows, keymap_json
from .review import EditorModel

__all__ = ["Editor", "EditorModel", "STATIC"]

STATIC = Path(__file__).parent / "static"
PAGE_MAX_SIDE = 4096  # px: larger scans are sent scaled down (boxes stay in page pixels)


def crop_key(image_id: int, region: Region) -> str:
    """Names one crop: the image, the line and its outline (a moved box is a new crop)."""
    digest = hashlib.sha1(json.dumps([image_id, region.id, region.points]).encode()).hexdigest()[:16]
    return f"{image_id}:{digest}"


def keys_help_html() -> str:
    """The help table as HTML (the README's table is the same rows)."""
    import html

    rows = "".join(
        f"<tr><td><kbd>{html.escape(k)}</kbd></td><td>{html.escape(v)}</td><td>{html.escape(w)}</td></tr>" for k, v, w in help_rows()
    )
    return f"<table>{rows}</table>"


class _Lru(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class Editor(anywidget.AnyWidget):
    """The review widget. `Editor(store, engine=...)`; display it as the last line of a cell.

    `who` names you in the history (undo and redo are yours only; reopening resumes where you
    stopped); `height` is the viewport's height in pixels."""

    _esm = STATIC / "editor.js"
    _css = STATIC / "editor.css"

    image = traitlets.Bytes(b"").tag(sync=True)
    image_type = traitlets.Unicode("image/jpeg").tag(sync=True)
    page = traitlets.Dict().tag(sync=True)  # {image_id, name, width, height}: changes with the image
    regions = traitlets.List().tag(sync=True)
    current = traitlets.Unicode("").tag(sync=True)
    vertex = traitlets.Int(-1).tag(sync=True)
    mode = traitlets.Unicode("").tag(sync=True)  # drawing: "", "box", "quad", "rotated"
    zoom = traitlets.Float(0.0).tag(sync=True)  # screen px per page px; 0: the whole page
    keymap = traitlets.List().tag(sync=True)
    gestures = traitlets.List().tag(sync=True)
    status = traitlets.Dict().tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    message_kind = traitlets.Unicode("info").tag(sync=True)
    ack = traitlets.Int(0).tag(sync=True)  # the last browser command handled (its seq)
    poll_ms = traitlets.Int(2000).tag(sync=True)  # how often the browser asks whether the store changed
    height = traitlets.Int(640).tag(sync=True)
    low_score = traitlets.Float(0.8).tag(sync=True)
    busy = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        store: Store | EditorModel,
        image_ids: Sequence[int] | None = None,
        engine: OcrEngine | None = None,
        who: str | None = None,
        low_score: float = 0.8,
        order: str = "score",
        height: int = 640,
        rules: Rules | None = None,
        poll_ms: int = 2000,
        **kwargs: Any,
    ) -> None:
        self.model = store if isinstance(store, EditorModel) else EditorModel(
            store, image_ids, engine, who, low_score, order, rules=rules,
        )
        super().__init__(
            keymap=keymap_json(), gestures=[list(g) for g in GESTURES], height=height,
            low_score=self.model.low_score, poll_ms=poll_ms, **kwargs,
        )
        self._pages: _Lru = _Lru(4)  # image id -> (bytes, type, scale)
        self._crops: _Lru = _Lru(4000)  # crop key -> PNG bytes
        self._image_shown: int | None = None
        self.on_msg(self._on_msg)
        self.observe(self._from_view, names=["mode", "vertex"])
        if not self.model.message:
            # First-time users learn the one gesture that does most of the work.
            self.model.message = "fix the text, press Enter (Tab / ↓ ↑ lines, PgDn next image; the table below lists every key)"
        self.refresh()

    # -- messages from the browser -------------------------------------------------------------

    def _from_view(self, change: Any) -> None:
        """The drawing mode and the selected corner are chosen in the browser."""
        if change["name"] == "mode":
            self.model.draw_mode = change["new"] if change["new"] in ("box", "quad", "rotated") else ""
        elif self.model.current is not None:
            v = int(change["new"])
            self.model.vertex = v if 0 <= v < len(self.model.current.points) else None

    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        if content.get("cmd") == "crops":
            self.send_crops([str(k) for k in content.get("keys", [])])
            return
        self.command(content)

    def command(self, msg: dict[str, Any]) -> None:
        """Apply one command (what the ES module sends) and show the result."""
        seq = msg.get("seq")
        if msg.get("cmd") == "poll":
            if self.model.poll():
                self.refresh()
            return
        if msg.get("cmd") in ("rerecognize", "rerecognize_all", "add") and self.model.engine is not None:
            self.busy = "reading…"
        try:
            self.model.handle(msg)
        finally:
            # Even after a bug (which still raises, into the log): the browser must not wait forever.
            self.busy = ""
            self.refresh(ack=int(seq) if isinstance(seq, int) else None)

    # -- state to the browser ------------------------------------------------------------------

    def _page_bytes(self) -> tuple[bytes, str]:
        m = self.model
        if m.image_id not in self._pages:
            try:
                rgb = m.images.get(m.image_id).rgb()
                data = render.encode(rgb, "JPEG", max_side=PAGE_MAX_SIDE, quality=88)
                kind = "image/jpeg"
            except SvtrLabelError as exc:
                m.message, m.message_kind = f"⚠ picture not shown: {exc}", "error"
                blank = np.full((max(1, min(m.page.height, 64)), max(1, min(m.page.width, 64)), 3), 235, dtype=np.uint8)
                data, kind = render.encode(blank, "PNG"), "image/png"
            self._pages.put(m.image_id, (data, kind))
        return self._pages[m.image_id]

    def _region_dict(self, region: Region) -> dict[str, Any]:
        m = self.model
        w, h = crop_size(region.points)
        return {
            "id": region.id,
            "points": [[round(x, 2), round(y, 2)] for x, y in region.points],
            "text": region.text,
            "score": region.score,
            "state": m.state_of(region),
            "checked": m.done(region),
            "low": m.is_low(region),
            "illegible": region.illegible,
            "version": m.versions.get(region.id, 0),
            "issues": [list(i) for i in m.issues(region)],
            "crop": crop_key(m.image_id, region),
            "crop_size": [w, h],
        }

    def refresh(self, ack: int | None = None) -> None:
        """Push the model's state to the browser (only what changed travels)."""
        m = self.model
        regions = [self._region_dict(r) for r in m.lines]
        p = m.progress()
        with self.hold_sync():
            if self._image_shown != m.image_id:
                data, kind = self._page_bytes()
                self.image_type = kind
                self.image = data
                self.page = {"image_id": m.image_id, "name": p.name, "width": m.page.width, "height": m.page.height}
                self._image_shown = m.image_id
            self.regions = regions
            self.current = m.current.id if m.current else ""
            self.vertex = -1 if m.vertex is None else m.vertex
            self.mode = m.draw_mode
            self.status = {**p.__dict__, "who": m.who, "text": p.text()}
            self.message = m.message
            self.message_kind = m.message_kind
            if ack is not None:
                self.ack = ack
        self._push_new_crops(regions)

    def _push_new_crops(self, regions: list[dict[str, Any]]) -> None:
        """Send the crops of lines whose outline is new (each crop travels once)."""
        missing = [r["crop"] for r in regions if r["crop"] not in self._crops]
        if missing:
            self.send_crops(missing)

    def _make_crops(self, keys: Sequence[str]) -> None:
        m = self.model
        todo = [r for r in m.lines if crop_key(m.image_id, r) in set(keys) and crop_key(m.image_id, r) not in self._crops]
        if not todo:
            return
        try:
            bgr = m.images.get(m.image_id).bgr
        except SvtrLabelError:
            return  # no picture: the message says so already
        for region, crop in zip(todo, render.export_crops(bgr, todo)):
            self._crops.put(crop_key(m.image_id, region), render.crop_png(crop))

    def send_crops(self, keys: Sequence[str]) -> None:
        """Crops as binary buffers: {"type": "crops", "keys": [...]} + one PNG per key."""
        self._make_crops(keys)
        found = [k for k in keys if k in self._crops]
        if found:
            self.send({"type": "crops", "keys": found}, buffers=[self._crops[k] for k in found])
