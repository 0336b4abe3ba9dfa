"""Pre-annotation of image files: read, look up the cache, decode, predict, report failures.

Files stream through one job per pipeline (Label Studio tasks: labelstudio.preannotate).
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from svtr_label.core.images import decode_image, sha256_bytes
from svtr_label.core.page import Page
from svtr_label.errors import ImageError
from svtr_label.ocr.cache import PredictionCache
from svtr_label.ocr.engine import OcrEngine
from svtr_label.settings import ImageLimits

log = logging.getLogger(__name__)




@dataclass(frozen=True)
class Outcome:
    """What happened to one input file: a page, or the reason it was skipped."""

    path: Path
    page: Page | None = None
    error: str | None = None
    cached: bool = False


def annotate_files(
    paths: Iterable[Path], engine: OcrEngine, cache: PredictionCache | None = None, limits: ImageLimits = ImageLimits()
) -> Iterator[Outcome]:
    """One Outcome per path, in input order. A bad file yields an error Outcome; the rest go on.

    Each file is read, hashed, looked up in the cache, decoded and predicted by one job; as many
    jobs run as the engine has pipelines, and as many more wait, so no pipeline waits for a
    file and no batch waits for its slowest page. Only the running jobs hold images."""
    workers = engine.workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="svtr-page") as pool:
        window: deque[Future[Outcome]] = deque()
        for path in paths:
            window.append(pool.submit(_annotate_file, Path(path), engine, cache, limits))
            if len(window) >= 2 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def _annotate_file(path: Path, engine: OcrEngine, cache: PredictionCache | None, limits: ImageLimits) -> Outcome:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Outcome(path, error=f"{path}: cannot read ({exc.strerror or exc})")
    sha = sha256_bytes(data)
    hit = cache.get(sha, engine.model_version) if cache is not None else None
    if hit is not None:
        return Outcome(path, hit.with_(source=str(path)), cached=True)
    try:
        image = decode_image(data, str(path), limits=limits, sha256=sha)
    except ImageError as exc:
        return Outcome(path, error=str(exc))
    try:
        page = engine.predict_one(image)
    except Exception as exc:  # the pipeline's own errors are plain Exceptions
        return Outcome(path, error=f"{path}: OCR failed ({type(exc).__name__}: {exc})")
    if cache is not None:
        cache.put(page)
    return Outcome(path, page.with_(source=str(path)))
