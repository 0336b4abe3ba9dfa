"""The editor's commands from the browser and its view of other reviewers: `handle` applies one
message of the ES module (static/editor.js) to `review.EditorModel` (a mixin), `poll` re-reads
when the store changed, and a stale edit (another reviewer changed the line first) becomes a
message naming them, the line reloaded, nothing written."""

from __future__ import annotations

from typing import Any, Callable

from svtr_label.errors import StaleEdit, SvtrLabelError, UsageError


class Commands:
    def poll(self) -> bool:
        """Re-read when the store changed (another reviewer, another notebook); True when it did."""
        if self.store.revision() == self.revision:
            return False
        before = {r.id: (r.text, r.points) for r in self.lines}
        self._load(keep=self.current.id if self.current else None)
        self.refresh_reviewed()
        after = {r.id: (r.text, r.points) for r in self.lines}
        if before != after:
            changed = sum(1 for k in after if before.get(k) != after[k]) + len(set(before) - set(after))
            self._say(f"{changed} line(s) of this image changed in the store meanwhile (another reviewer): shown as they are now")
        return True

    def _stale(self, exc: StaleEdit) -> None:
        """A refused edit: reload the line as the store has it and say who changed it."""
        keep = exc.region_id if exc.region_id in {r.id for r in self.page.regions} else (self.current.id if self.current else None)
        self._load(keep=keep)
        now = getattr(exc.current, "text", None)
        who = exc.by or "another reviewer"
        if not exc.region_id:
            what = "changed the image's review state"
        elif now is None:
            what = "deleted this line"
        else:
            what = f"changed this line (its text is now {now!r})"
        self._say(f"⚠ not applied: {who} {what} after you opened it; reloaded: check it and redo your change", "warn")

    # -- commands from the browser -------------------------------------------------------------

    def handle(self, msg: dict[str, Any]) -> None:
        """Apply one command from the editor's ES module ({'cmd': ..., 'region': ..., 'version': ...}).

        Errors meant for a person (UsageError, StoreError) and stale edits become the message;
        anything else is a bug and raises."""
        cmd = msg.get("cmd")
        if cmd == "poll":
            self.poll()
            return
        self._say("")
        try:
            self._dispatch(cmd, msg)
        except StaleEdit as exc:
            self._stale(exc)
        except SvtrLabelError as exc:
            self._say(f"⚠ {exc}", "error")

    def _dispatch(self, cmd: Any, msg: dict[str, Any]) -> None:
        rid = msg.get("region")
        version = msg.get("version")
        version = None if version is None else int(version)
        text = msg.get("text")
        if rid is not None and text is not None and cmd not in ("accept", "text"):
            # Leaving a line keeps what was typed in it.
            self.set_text(str(text), rid, version=version)
            version = None
        if rid is not None and cmd not in ("accept", "text", "points", "select"):
            self.select(rid)
        simple: dict[str, Callable[[], Any]] = {
            "next_line": self.next_line,
            "prev_line": self.prev_line,
            "next_image": self.next_image,
            "prev_image": self.prev_image,
            "illegible": lambda: self.mark_illegible(version=version),
            "delete": lambda: self.delete(version=version),
            "rerecognize": lambda: self.rerecognize(version=version),
            "rerecognize_all": self.rerecognize_all,
            "undo": self.undo,
            "redo": self.redo,
            "reviewed": self.mark_reviewed,
            "zoom_line": self.toggle_zoom,
            "escape": lambda: self.select_vertex(None),
        }
        if cmd == "select" and rid is not None:
            self.select(rid)
        elif cmd == "accept":
            self.accept(None if text is None else str(text), rid, version)
        elif cmd == "text" and rid is not None:
            self.set_text(str(text or ""), rid, version=version)
        elif cmd == "points":
            self.set_points(msg["points"], rid, version)
            if msg.get("vertex") is not None:
                self.select_vertex(int(msg["vertex"]))
        elif cmd == "add":
            self.add_region(msg["points"], str(msg.get("text") or ""))
        elif cmd == "draw":
            self.set_draw(str(msg.get("mode") or "box"))
        elif cmd == "go_image":
            self.go_to_image_id(int(msg["image_id"]))
        elif cmd == "vertex":
            self.select_vertex(None if msg.get("vertex") is None else int(msg["vertex"]))
        elif cmd in simple:
            simple[cmd]()
        else:
            raise UsageError(f"unknown editor command {cmd!r}")
