"""A review queue across pages: the lines of every image in one grid of crops with their texts,
lowest confidence first or as a random audit sample (a wrong line can score ~1.0), corrected in
place; and search and replace over every page with a preview before anything is written.

`QueueModel` is the logic (plain pytest), `ReviewQueue` the anywidget view (`static/queue.js`).
Every edit carries the version of the line the reviewer saw, so another reviewer's change since is
refused and shown, never overwritten.
"""

from __future__ import annotations

import getpass
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import anywidget
import traitlets

from svtr_label.core.page import IGNORE_TEXT, Region
from svtr_label.dataset.validate import Rules, crop_size, region_issues
from svtr_label.errors import StaleEdit, SvtrLabelError, UsageError
from svtr_label.store import ImageInfo, Store

from . import render
from .data import ImageCache
from .editor import crop_key
from .review import image_name

SORTS = ("score", "audit", "page")


@dataclass(frozen=True)
class Item:
    """One line of one image, as the queue shows it."""

    image_id: int
    name: str
    region: Region
    state: str  # accepted, corrected or unchecked
    version: int

    @property
    def key(self) -> str:
        return f"{self.image_id}/{self.region.id}"


@dataclass(frozen=True)
class Change:
    """One replacement the preview proposes."""

    image_id: int
    name: str
    region_id: str
    before: str
    after: str
    version: int


@dataclass
class Applied:
    changed: int
    stale: list[tuple[Change, str]]  # the change and who changed the line meanwhile

    def text(self) -> str:
        out = f"{self.changed} line(s) changed"
        if self.stale:
            who = ", ".join(sorted({by for _, by in self.stale}))
            out += f"; {len(self.stale)} not changed: changed meanwhile by {who} (preview again)"
        return out


class QueueModel:
    """Every line of a list of images, sorted, sampled and paged; edits and replacements."""

    def __init__(self, store: Store, image_ids: Sequence[int] | None = None, who: str | None = None,
                 low_score: float = 0.8, page_size: int = 40, rules: Rules | None = None) -> None:
        self.store = store
        self.image_ids = list(image_ids) if image_ids is not None else None
        self.who = who or getpass.getuser()
        self.low_score = low_score
        self.page_size = page_size
        self.rules = rules or Rules()
        self.sort = "score"
        self.sample_n = 50
        self.seed = 0
        self.only_unchecked = False
        self.page = 0
        self.reload()

    def reload(self) -> None:
        """Re-read every line (after edits anywhere)."""
        self.revision = self.store.revision()
        infos: list[ImageInfo] = self.store.images()
        wanted = None if self.image_ids is None else set(self.image_ids)
        items = []
        for info in infos:
            if wanted is not None and info.id not in wanted:
                continue
            page, versions = self.store.page_and_versions(info.id)
            states = self.store.region_states(info.id)
            name = image_name(info.ref, info.id)
            for region in page.regions:
                items.append(Item(info.id, name, region, str(states.get(region.id, "unchecked")), versions.get(region.id, 0)))
        self.all_items = items
        self.page = min(self.page, self.n_pages() - 1)

    def changed(self) -> bool:
        return self.store.revision() != self.revision

    def rows(self) -> list[Item]:
        items = [i for i in self.all_items if not (self.only_unchecked and i.state != "unchecked")]
        if self.sort == "audit":
            # Sorted keys first: the same seed draws the same lines whatever order the store lists.
            pool = sorted(items, key=lambda i: (i.image_id, i.region.id))
            return random.Random(self.seed).sample(pool, min(self.sample_n, len(pool)))
        if self.sort == "page":
            return sorted(items, key=lambda i: (i.image_id, min(p[1] for p in i.region.points), min(p[0] for p in i.region.points)))
        return sorted(items, key=lambda i: (i.region.score if i.region.score is not None else -1.0, i.image_id, i.region.id))

    def n_pages(self) -> int:
        return max(1, -(-len(self.rows()) // self.page_size))

    def visible(self) -> list[Item]:
        start = self.page * self.page_size
        return self.rows()[start : start + self.page_size]

    def find(self, key: str) -> Item:
        for item in self.all_items:
            if item.key == key:
                return item
        raise UsageError(f"no line {key!r} in the queue (deleted meanwhile?)")

    # -- edits -----------------------------------------------------------------------------------

    def accept(self, key: str, text: str | None = None, version: int | None = None) -> None:
        """Confirm a line, with `text` if typed; StaleEdit when it changed since `version`."""
        item = self.find(key)
        expected = item.version if version is None else int(version)
        if text is not None:
            text = text.replace("\r", "").replace("\n", " ").strip()
            if text != item.region.text:
                self.store.set_text(item.image_id, item.region.id, text, who=self.who, expected_version=expected)
                expected = self.store.region_versions(item.image_id).get(item.region.id, expected + 1)
        self.store.accept_region(item.image_id, item.region.id, who=self.who, expected_version=expected)
        self.reload()

    def set_text(self, key: str, text: str, version: int | None = None) -> bool:
        item = self.find(key)
        text = text.replace("\r", "").replace("\n", " ").strip()
        if text == item.region.text:
            return False
        self.store.set_text(item.image_id, item.region.id, text, who=self.who,
                            expected_version=item.version if version is None else int(version))
        self.reload()
        return True

    def illegible(self, key: str, version: int | None = None) -> None:
        item = self.find(key)
        if item.region.text != IGNORE_TEXT:
            self.store.mark_illegible(item.image_id, item.region.id, who=self.who,
                                      expected_version=item.version if version is None else int(version))
        self.reload()

    # -- search and replace ----------------------------------------------------------------------

    def preview(self, find: str, replace: str, regex: bool = False, case: bool = True) -> list[Change]:
        """What replacing `find` by `replace` in every line (not '###') would do; nothing is written."""
        if not find:
            raise UsageError("type what to find")
        flags = 0 if case else re.IGNORECASE
        try:
            pattern = re.compile(find if regex else re.escape(find), flags)
        except re.error as exc:
            raise UsageError(f"not a regular expression: {exc}") from None
        out = []
        for item in sorted(self.all_items, key=lambda i: (i.image_id, i.region.id)):
            if item.region.illegible:
                continue
            try:
                after = pattern.sub(replace if regex else replace.replace("\\", "\\\\"), item.region.text)
            except (re.error, IndexError) as exc:
                raise UsageError(f"the replacement does not fit the expression: {exc}") from None
            if after != item.region.text:
                out.append(Change(item.image_id, item.name, item.region.id, item.region.text, after, item.version))
        return out

    def apply(self, changes: Sequence[Change]) -> Applied:
        """Write the previewed changes; a line changed since the preview is left alone and named."""
        done = Applied(0, [])
        for change in changes:
            try:
                self.store.set_text(change.image_id, change.region_id, change.after, who=self.who, expected_version=change.version)
                done.changed += 1
            except StaleEdit as exc:
                done.stale.append((change, exc.by or "someone"))
        self.reload()
        return done


class ReviewQueue(anywidget.AnyWidget):
    """The queue as a widget: `ReviewQueue(store, who=...)`; display it as the last line of a cell."""

    _esm = Path(__file__).parent / "static" / "queue.js"
    _css = Path(__file__).parent / "static" / "queue.css"

    items = traitlets.List().tag(sync=True)
    sort = traitlets.Unicode("score").tag(sync=True)
    sample_n = traitlets.Int(50).tag(sync=True)
    seed = traitlets.Int(0).tag(sync=True)
    only_unchecked = traitlets.Bool(False).tag(sync=True)
    page = traitlets.Int(0).tag(sync=True)
    n_pages = traitlets.Int(1).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    summary = traitlets.Unicode("").tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    message_kind = traitlets.Unicode("info").tag(sync=True)
    preview = traitlets.List().tag(sync=True)
    ack = traitlets.Int(0).tag(sync=True)
    poll_ms = traitlets.Int(2000).tag(sync=True)

    def __init__(self, store: Store, image_ids: Sequence[int] | None = None, who: str | None = None, low_score: float = 0.8,
                 page_size: int = 40, rules: Rules | None = None, poll_ms: int = 2000) -> None:
        self.model = QueueModel(store, image_ids, who, low_score, page_size, rules)
        super().__init__(poll_ms=poll_ms)
        self.images = ImageCache(store, size=8)
        self._crops: dict[str, bytes] = {}
        self._changes: list[Change] = []
        self.on_msg(self._on_msg)
        self.observe(self._controls, names=["sort", "sample_n", "seed", "only_unchecked", "page"])
        self.refresh()

    def _controls(self, change: Any) -> None:
        m = self.model
        if change["name"] == "sort" and change["new"] not in SORTS:
            return
        setattr(m, change["name"], change["new"])
        if change["name"] != "page":
            m.page = 0
        m.page = min(max(m.page, 0), m.n_pages() - 1)
        self.refresh()

    def _on_msg(self, _w: Any, content: Any, _b: Any) -> None:
        if isinstance(content, dict):
            self.command(content)

    def command(self, msg: dict[str, Any]) -> None:
        cmd, m = msg.get("cmd"), self.model
        if cmd == "crops":
            self.send_crops([str(k) for k in msg.get("keys", [])])
            return
        if cmd == "poll":
            if m.changed():
                m.reload()
                self.refresh()
            return
        self.message, self.message_kind = "", "info"
        try:
            if cmd == "accept":
                m.accept(str(msg["key"]), msg.get("text"), msg.get("version"))
            elif cmd == "text":
                m.set_text(str(msg["key"]), str(msg.get("text") or ""), msg.get("version"))
            elif cmd == "illegible":
                m.illegible(str(msg["key"]), msg.get("version"))
            elif cmd == "preview":
                self._changes = m.preview(str(msg.get("find") or ""), str(msg.get("replace") or ""), bool(msg.get("regex")), bool(msg.get("case", True)))
                self.message = f"{len(self._changes)} line(s) would change: check the list, then apply" if self._changes else "nothing matches"
            elif cmd == "apply":
                if not self._changes:
                    raise UsageError("preview first: nothing to apply")
                done = m.apply(self._changes)
                self._changes = []
                self.message, self.message_kind = done.text(), "warn" if done.stale else "info"
            elif cmd == "cancel":
                self._changes = []
            else:
                raise UsageError(f"unknown queue command {cmd!r}")
        except StaleEdit as exc:
            m.reload()
            now = getattr(exc.current, "text", None)
            self.message = (f"⚠ not applied: {exc.by or 'another reviewer'} changed this line after you opened it"
                            + (f" (its text is now {now!r})" if now is not None else "") + "; reloaded: check it and redo your change")
            self.message_kind = "warn"
        except SvtrLabelError as exc:
            self.message, self.message_kind = f"⚠ {exc}", "error"
        finally:
            seq = msg.get("seq")
            self.refresh(ack=int(seq) if isinstance(seq, int) else None)

    def _item_dict(self, item: Item) -> dict[str, Any]:
        r, m = item.region, self.model
        w, h = crop_size(r.points)
        return {
            "key": item.key, "image_id": item.image_id, "name": item.name, "region_id": r.id, "text": r.text,
            "score": r.score, "state": item.state, "version": item.version,
            "low": r.score is not None and r.score < m.low_score and item.state == "unchecked",
            "issues": [[i.kind, i.message] for i in region_issues("", r, m.rules)],
            "crop": crop_key(item.image_id, r), "crop_size": [w, h],
        }

    def refresh(self, ack: int | None = None) -> None:
        m = self.model
        rows = m.rows()
        checked = sum(1 for i in m.all_items if i.state != "unchecked")
        with self.hold_sync():
            self.items = [self._item_dict(i) for i in m.visible()]
            self.page = m.page
            self.n_pages = m.n_pages()
            self.total = len(rows)
            self.summary = f"{len(rows)} lines shown of {len(m.all_items)} · {checked} checked"
            self.preview = [
                {"image_id": c.image_id, "name": c.name, "region_id": c.region_id, "before": c.before, "after": c.after}
                for c in self._changes
            ]
            if ack is not None:
                self.ack = ack

    def send_crops(self, keys: Sequence[str]) -> None:
        wanted = set(keys)
        todo: dict[int, list[Region]] = {}
        for item in self.model.all_items:
            k = crop_key(item.image_id, item.region)
            if k in wanted and k not in self._crops:
                todo.setdefault(item.image_id, []).append(item.region)
        for image_id, regions in todo.items():
            try:
                bgr = self.images.get(image_id).bgr
            except SvtrLabelError:
                continue
            for region, crop in zip(regions, render.export_crops(bgr, regions)):
                self._crops[crop_key(image_id, region)] = render.crop_png(crop)
        found = [k for k in keys if k in self._crops]
        if found:
            self.send({"type": "crops", "keys": found}, buffers=[self._crops[k] for k in found])
