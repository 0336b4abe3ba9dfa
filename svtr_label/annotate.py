"""Pre-annotation of image files: read, look up the cache, predict in batches, report failures.

Reading and hashing the next files overlaps with inference on the current batch.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .cache import PredictionCache
from .engine import OcrEngine
from .images import DecodedImage, ImageError, decode_image, sha256_bytes
from .page import Page


@dataclass(frozen=True)
class Outcome:
    """What happened to one input file: a page, or the reason it was skipped."""

    path: Path
    page: Page | None = None
    error: str | None = None
    cached: bool = False


@dataclass(frozen=True)
class _Loaded:
    path: Path
    sha256: str = ""
    data: bytes = b""
    error: str | None = None


def _read(path: Path) -> _Loaded:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _Loaded(path, error=f"{path}: cannot read ({exc.strerror or exc})")
    return _Loaded(path, sha256_bytes(data), data)


def annotate_files(
    paths: Iterable[Path],
    engine: OcrEngine,
    cache: PredictionCache | None = None,
    batch_size: int = 4,
) -> Iterator[Outcome]:
    """One Outcome per path, in order. A bad file yields an error Outcome; the rest go on."""
    pending: list[tuple[Path, DecodedImage]] = []

    def flush() -> Iterator[Outcome]:
        if not pending:
            return
        for path, result in predict_batch(engine, pending):
            if isinstance(result, Page):
                if cache is not None:
                    cache.put(result)
                yield Outcome(path, result.with_(source=str(path)))
            else:
                yield Outcome(path, error=result)
        pending.clear()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="svtr-read") as reader:
        for loaded in reader.map(_read, paths):
            if loaded.error:
                yield from flush()
                yield Outcome(loaded.path, error=loaded.error)
                continue
            hit = cache.get(loaded.sha256, engine.model_version) if cache is not None else None
            if hit is not None:
                yield from flush()
                yield Outcome(loaded.path, hit.with_(source=str(loaded.path)), cached=True)
                continue
            try:
                image = decode_image(loaded.data, str(loaded.path))
            except ImageError as exc:
                yield from flush()
                yield Outcome(loaded.path, error=str(exc))
                continue
            pending.append((loaded.path, image))
            if len(pending) >= batch_size:
                yield from flush()
        yield from flush()


def predict_batch(engine: OcrEngine, items: list[tuple[Path, DecodedImage]]) -> list[tuple[Path, Page | str]]:
    """Predict a batch; if the pipeline fails on it, retry image by image so one bad input fails alone."""
    try:
        return list(zip((p for p, _ in items), engine.predict([img for _, img in items])))
    except Exception as exc:  # the pipeline's own errors are plain Exceptions
        if len(items) == 1:
            path = items[0][0]
            return [(path, f"{path}: OCR failed ({type(exc).__name__}: {exc})")]
        out: list[tuple[Path, Page | str]] = []
        for item in items:
            out.extend(predict_batch(engine, [item]))
        return out
