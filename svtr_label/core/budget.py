"""A budget of decoded pixels held at once, shared by the threads of a process.

A page is small on disk and large decoded (a 7 KB 1-bit PNG of 7700x7700 px is 178 MB as BGR):
a request of a few such pages, or a few requests at once, would otherwise hold them all. Work
that decodes an image holds its pixels from the budget until it is done with them; whoever would
go over it waits. One image larger than the whole budget still goes, alone, so nothing waits forever.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from contextlib import contextmanager
from typing import Iterator


class PixelBudget:
    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels
        self._held = 0
        self._peak = 0
        self._changed = threading.Condition()

    @property
    def held(self) -> int:
        return self._held

    @property
    def peak(self) -> int:
        """The most pixels held at once so far (what a test or a benchmark checks)."""
        return self._peak

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """Hold `pixels` for the duration of the block, waiting until they fit."""
        with self._changed:
            self._changed.wait_for(lambda: self._held == 0 or self._held + pixels <= self.max_pixels)
            self._held += pixels
            self._peak = max(self._peak, self._held)
        try:
            yield
        finally:
            with self._changed:
                self._held -= pixels
                self._changed.notify_all()


# Pages this large are worth handing their freed memory back to the system for (see below).
LARGE_IMAGE_PIXELS = 20_000_000

_libc = None


def return_freed_memory() -> None:
    """Give memory freed by a large page back to the system (glibc's malloc_trim). Each thread
    decodes into its own malloc arena, and freed arenas are kept: without this, a process that
    handled one 60 MP page at a time on four threads still grew to 2.3 GB. No-op elsewhere."""
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        _libc = ctypes.CDLL(name) if name else False
    trim = getattr(_libc, "malloc_trim", None) if _libc else None
    if trim is not None:
        trim(0)
