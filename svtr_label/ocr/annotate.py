"""Pre-annotation of image inputs: read, look up the cache, decode, predict, report failures.

An input is a name and a way to read its bytes (a file, bytes downloaded by a Ray read task, ...);
files and Ray's actors go through the same steps. Label Studio tasks: labelstudio.preannotate.
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from svtr_label.core.images import decode_image, sha256_bytes
from svtr_label.core.page import Page
from svtr_label.errors import ImageError, SvtrLabelError
from svtr_label.ocr.cache import PredictionCache
from svtr_label.ocr.engine import OcrEngine
from svtr_label.settings import ImageLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Input:
    """One image to pre-annotate: its name (a path or URI) and how to read its bytes. `read`
    raises OSError or an SvtrLabelError when the bytes cannot be had."""

    name: str
    read: Callable[[], bytes]


@dataclass(frozen=True)
class Outcome:
    """What happened to one input: a page, or the reason it was skipped."""

    name: str
    page: Page | None = None
    error: str | None = None
    cached: bool = False
    sha256: str | None = None

    @property
    def path(self) -> Path:
        """The input as a path (annotate_files' inputs are files)."""
        return Path(self.name)


def annotate(
    inputs: Iterable[Input], engine: OcrEngine, cache: PredictionCache | None = None, limits: ImageLimits = ImageLimits()
) -> Iterator[Outcome]:
    """One Outcome per input, in input order. A bad input yields an error Outcome; the rest go on.

    Each input is read, hashed, looked up in the cache, decoded and predicted by one job; as many
    jobs run as the engine has pipelines, and as many more wait, so no pipeline waits for an
    input and no batch waits for its slowest page. Only the running jobs hold images."""
    workers = engine.workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="svtr-page") as pool:
        window: deque[Future[Outcome]] = deque()
        for item in inputs:
            window.append(pool.submit(annotate_one, item, engine, cache, limits))
            if len(window) >= 2 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def annotate_files(
    paths: Iterable[Path], engine: OcrEngine, cache: PredictionCache | None = None, limits: ImageLimits = ImageLimits()
) -> Iterator[Outcome]:
    """annotate() of image files; each Outcome is named by str(path)."""
    return annotate((Input(str(p), Path(p).read_bytes) for p in paths), engine, cache, limits)


def annotate_one(item: Input, engine: OcrEngine, cache: PredictionCache | None, limits: ImageLimits) -> Outcome:
    name = item.name
    try:
        data = item.read()
    except OSError as exc:
        return Outcome(name, error=f"{name}: cannot read ({exc.strerror or exc})")
    except SvtrLabelError as exc:
        return Outcome(name, error=str(exc))
    sha = sha256_bytes(data)
    hit = cache.get(sha, engine.model_version) if cache is not None else None
    if hit is not None:
        return Outcome(name, hit.with_(source=name), cached=True, sha256=sha)
    try:
        image = decode_image(data, name, limits=limits, sha256=sha)
    except ImageError as exc:
        return Outcome(name, error=str(exc), sha256=sha)
    try:
        page = engine.predict_one(image)
    except Exception as exc:  # the pipeline's own errors are plain Exceptions
        return Outcome(name, error=f"{name}: OCR failed ({type(exc).__name__}: {exc})", sha256=sha)
    if cache is not None:
        cache.put(page)
    return Outcome(name, page.with_(source=name), sha256=sha)
