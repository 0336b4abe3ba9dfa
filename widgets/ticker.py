"""`Ticker`: an invisible anywidget that calls back every `interval_ms` while it is on screen.
The browser and the review queue use it to poll `Store.revision()` and refresh their counts when
another reviewer (another notebook, another person) changed the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import anywidget
import traitlets


class Ticker(anywidget.AnyWidget):
    _esm = Path(__file__).parent / "static" / "ticker.js"
    interval_ms = traitlets.Int(2000).tag(sync=True)

    def __init__(self, callback: Callable[[], Any], interval_ms: int = 2000) -> None:
        super().__init__(interval_ms=interval_ms)
        self._callback = callback
        self.on_msg(lambda _w, content, _b: self._callback() if isinstance(content, dict) and content.get("cmd") == "tick" else None)
