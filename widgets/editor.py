"""Review one image at a time: its quads on the picture, its lines as crop + editable text.

`Editor` is the ipywidgets view over `review.EditorModel`, which holds the review position and
turns every action into one store call.
"""

from __future__ import annotations

import html
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import ipywidgets as w
import numpy as np

from svtr_label.core.page import Region
from svtr_label.errors import SvtrLabelError
from svtr_label.ocr.engine import OcrEngine
from svtr_label.store import Store

from . import render
from .bridge import ALT_KEYS, Bridge, mark_html, row_class, script_html
from .review import EditorModel

__all__ = ["Editor", "EditorModel"]

# --- the view --------------------------------------------------------------------------------

STYLE = """<style>
.svtr-editor .svtr-line { border-left: 4px solid transparent; padding: 2px 4px; margin-bottom: 2px; }
.svtr-editor .svtr-line.svtr-current { border-left-color: #ffb300; background: #fff8e1; }
.svtr-editor .svtr-line.svtr-low .widget-text input { border-color: #e53935; }
.svtr-editor .svtr-line.svtr-checked .widget-text input { background: #f1f8e9; }
.svtr-editor .svtr-canvas:focus { outline: 2px solid #1e88e5; }
.svtr-editor .svtr-crop img { height: 40px; width: auto; max-width: 100%; object-fit: contain; object-position: left; display: block; }
.svtr-editor .svtr-meta { font-size: 11px; color: #555; }
</style>"""

KEYS_HELP = [
    ("Enter", "accept the line (with your text) and go to the next unchecked one"),
    ("↓ / ↑", "next / previous line"),
    ("PgDn / PgUp", "next / previous image"),
    ("Alt+I", "illegible (###)"),
    ("Alt+D", "delete the line"),
    ("Alt+R", "re-read the line with the OCR engine"),
    ("Alt+Z", "undo the last edit of this image"),
    ("Alt+F", "zoom to the line / whole page"),
    ("Alt+N", "draw a new box (or Shift+drag on the image)"),
    ("Alt+S", "mark the image reviewed"),
    ("drag a white dot", "move that corner; on the image, 1-4 pick a corner, arrows nudge it (Shift: 10 px)"),
]
assert {"illegible", "delete", "rerecognize", "undo", "zoom", "draw", "reviewed"} == set(ALT_KEYS.values())


def keys_help_html() -> str:
    rows = "".join(f"<tr><td><kbd>{html.escape(k)}</kbd></td><td>{html.escape(v)}</td></tr>" for k, v in KEYS_HELP)
    return f'<details><summary>keyboard and mouse</summary><table style="font-size:12px">{rows}</table></details>'


class _Row:
    """One line in the list: its crop, its score and state, and its text box."""

    def __init__(self, editor: "Editor", region: Region) -> None:
        self.region_id = region.id
        self.crop = w.HTML()
        self.crop.add_class("svtr-crop")
        self.text = w.Text(value=region.text, continuous_update=False, layout=w.Layout(width="98%"))
        self.text.observe(lambda ch: editor._typed(self.region_id, ch["new"]), names="value")
        # No shrinking: in the scrolled list a squeezed row would hide its text box.
        self.box = w.VBox([self.crop, self.text], layout=w.Layout(flex="0 0 auto"))
        self.box.add_class("svtr-line")
        self.box.add_class(row_class(region.id))
        self._crop_key: tuple | None = None

    def close(self) -> None:
        for widget in (self.crop, self.text, self.box):
            widget.close()

    def show(self, editor: "Editor", region: Region, current: bool) -> None:
        model = editor.model
        if self._crop_key != region.points:
            crop = render.line_crop(editor.rgb, region.points)
            self._crop_uri = render.data_uri(render.encode(crop, "PNG"), "PNG")
            self._crop_key = region.points
        state = model.states.get(region.id, "")
        score = "drawn" if region.score is None else f"{region.score:.2f}"
        flag = " ⚠ low" if model.is_low(region) else ""
        mark = {"accepted": " ✓ accepted", "corrected": " ✎ corrected"}.get(state, "")
        self.crop.value = f'<img src="{self._crop_uri}"><span class="svtr-meta">score {score}{flag}{mark}</span>'
        if self.text.value != region.text:
            with editor._quiet():
                self.text.value = region.text
        _toggle(self.box, "svtr-current", current)
        _toggle(self.box, "svtr-low", model.is_low(region))
        _toggle(self.box, "svtr-checked", bool(state))


def _toggle(widget: w.DOMWidget, cls: str, on: bool) -> None:
    if on and cls not in widget._dom_classes:
        widget.add_class(cls)
    elif not on and cls in widget._dom_classes:
        widget.remove_class(cls)


class Editor(w.VBox):
    """The review widget. `Editor(store, engine=...)`; display it as the last line of a cell."""

    def __init__(
        self,
        store: Store | EditorModel,
        image_ids: Sequence[int] | None = None,
        engine: OcrEngine | None = None,
        who: str | None = None,
        low_score: float = 0.8,
        order: str = "score",
        width: int = 640,
    ) -> None:
        self.model = store if isinstance(store, EditorModel) else EditorModel(store, image_ids, engine, who, low_score, order)
        self.uid = uuid.uuid4().hex[:8]
        self.width = width
        self._muted = 0
        self._base_key: tuple | None = None
        self._rows: dict[str, _Row] = {}
        self.bridge = Bridge(self.uid, self._command)
        self.status = w.HTML()
        self.base = w.HTML(layout=w.Layout(grid_area="stack"))
        self.overlay = w.HTML(layout=w.Layout(grid_area="stack"))
        self.canvas = w.GridBox([self.base, self.overlay], layout=w.Layout(grid_template_areas='"stack"', width=f"{width + 4}px"))
        self.canvas.add_class("svtr-canvas")
        self.lines = w.VBox(layout=w.Layout(width="420px", max_height="640px", overflow="auto"))
        self.toolbar = self._toolbar()
        super().__init__([
            w.HTML(STYLE), self.status, self.toolbar,
            w.HBox([self.canvas, self.lines]), w.HTML(keys_help_html()), self.bridge.widget,
        ])
        self.add_class("svtr-editor")
        self.add_class(f"svtr-uid-{self.uid}")
        # First-time users learn the one gesture that does most of the work.
        self.model.message = self.model.message or "click a line's text, fix it, press Enter (↓/↑ lines, PgDn next image)"
        self.refresh(focus=False)

    # -- building ------------------------------------------------------------------------------

    def _toolbar(self) -> w.HBox:
        buttons = [
            ("◀ image", "prev_image", "PgUp"), ("image ▶", "next_image", "PgDn"),
            ("▲ line", "prev_line", "↑"), ("line ▼", "next_line", "↓"),
            ("accept", "accept", "Enter"), ("###", "illegible", "Alt+I"), ("delete", "delete", "Alt+D"),
            ("re-read", "rerecognize", "Alt+R"), ("undo", "undo", "Alt+Z"), ("zoom", "zoom", "Alt+F"),
            ("draw box", "draw", "Alt+N"), ("reviewed", "reviewed", "Alt+S"),
        ]
        out = []
        for label, cmd, key in buttons:
            b = w.Button(description=label, tooltip=key, layout=w.Layout(width="auto"))
            b.on_click(lambda _b, cmd=cmd: self._command({"cmd": cmd}))
            out.append(b)
        return w.HBox(out, layout=w.Layout(flex_flow="row wrap"))

    # -- events --------------------------------------------------------------------------------

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Setting a text box from the store must not be taken for the reviewer typing."""
        self._muted += 1
        try:
            yield
        finally:
            self._muted -= 1

    def _typed(self, region_id: str, text: str) -> None:
        """A text box committed (Enter or leaving it): write it now."""
        if self._muted:
            return
        self._run(lambda: self.model.set_text(text, region_id), focus=False)

    def _command(self, msg: dict[str, Any]) -> None:
        # Focus follows the line for keyboard work, but not when the reviewer is on the picture.
        focus = msg.get("cmd") not in ("move", "nudge", "vertex", "escape", "zoom", "draw") and msg.get("from") != "focus"
        self._run(lambda: self.model.handle(msg), focus=focus)

    def _run(self, action: Callable[[], Any], focus: bool) -> None:
        try:
            action()
        except SvtrLabelError as exc:
            self.model.message = f"⚠ {exc}"
        self.refresh(focus=focus)

    # -- drawing -------------------------------------------------------------------------------

    @property
    def rgb(self) -> np.ndarray:
        """The current image's pixels; a blank page of the right size when its file cannot be read,
        so the texts can still be reviewed and the reviewer is told why the picture is missing."""
        m = self.model
        try:
            return m.images.get(m.image_id).rgb()
        except SvtrLabelError as exc:
            m.message = f"⚠ picture not shown: {exc}"
            return np.full((m.page.height, m.page.width, 3), 255, dtype=np.uint8)

    def _view(self) -> render.ViewBox:
        page, region = self.model.page, self.model.current
        if self.model.zoom and region is not None:
            return render.zoom_box(region.points, page.width, page.height)
        return render.whole_page(page.width, page.height)

    def refresh(self, focus: bool = True) -> None:
        """Redraw from the model: the picture only when image or zoom changed, the rest always."""
        m = self.model
        view = self._view()
        key = (m.image_id, view)
        if key != self._base_key:
            crop = render.cut(self.rgb, view)
            uri = render.data_uri(render.encode(crop, "JPEG", max_side=2 * self.width))
            self.base.value = script_html() + render.base_svg(uri, view.clip(m.page.width, m.page.height), view, self.width)
            self._base_key = key
        current = m.current.id if m.current else None
        self.overlay.value = mark_html() + render.overlay_svg(
            self.uid, m.lines, view, self.width, current, accepted=m.states, low_score=m.low_score,
            vertex=m.vertex, mode="draw" if m.draw_mode else "edit",
        )
        self._show_rows(current)
        message = f' · <b>{html.escape(m.message)}</b>' if m.message else ""
        self.status.value = f"<div>{html.escape(m.progress().text())}{message}</div>"
        if focus and current in self._rows:
            self._rows[current].text.focus()

    def _show_rows(self, current: str | None) -> None:
        ids = [r.id for r in self.model.lines]
        if ids != list(self._rows):
            old = self._rows
            self._rows = {rid: old.get(rid) or _Row(self, r) for rid, r in zip(ids, self.model.lines)}
            for rid, row in old.items():
                if rid not in self._rows:
                    row.close()
            self.lines.children = [row.box for row in self._rows.values()]
        for region in self.model.lines:
            self._rows[region.id].show(self, region, region.id == current)
