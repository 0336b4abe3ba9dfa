"""Where each reviewer stopped (so reopening the editor resumes there), and how an image is named
on screen: the same `#id name` in the editor, the browser and the review queue."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from svtr_label.store import Store


def image_name(ref: str | None, image_id: int) -> str:
    """The file name of a store ref (`/data/local-files/?d=scans/p1.png` -> `p1.png`)."""
    if not ref:
        return f"image {image_id}"
    return ref.replace("\\", "/").rsplit("/", 1)[-1].rsplit("?d=", 1)[-1] or ref


class Positions:
    """Where each reviewer stopped, per store: a small JSON file beside the store file
    (`<store>.positions.json`, {who: {image_id, region_id, at}}). Written atomically; a file
    that cannot be read or written never stops the review (the editor then starts at the top)."""

    def __init__(self, store: Store) -> None:
        self.path = None if store.path == ":memory:" else Path(str(store.path) + ".positions.json")

    def _read(self) -> dict[str, Any]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, who: str) -> dict[str, Any]:
        entry = self._read().get(who)
        return entry if isinstance(entry, dict) else {}

    def set(self, who: str, image_id: int, region_id: str | None) -> None:
        if self.path is None:
            return
        try:
            import fcntl
        except ImportError:  # Windows: no lock; the last writer wins, per reviewer anyway
            fcntl = None  # type: ignore[assignment]
        try:
            with open(str(self.path) + ".lock", "a") as lock:
                if fcntl is not None:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                data = self._read()
                at = datetime.now(timezone.utc).isoformat(timespec="seconds")
                data[who] = {"image_id": image_id, "region_id": region_id, "at": at}
                tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
                os.replace(tmp, self.path)
        except OSError:
            pass
