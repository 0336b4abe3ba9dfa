"""Pre-annotation of image files and of Label Studio tasks: read or fetch, look up the cache,
predict in batches, report failures.

Reading and hashing the next files overlaps with inference on the current batch.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from .cache import PredictionCache
from .engine import OcrEngine
from .fetch import ImageFetcher
from .images import DecodedImage, ImageError, decode_image, sha256_bytes
from .labelstudio import LabelConfig, page_to_results
from .page import Page

log = logging.getLogger(__name__)

BATCH_SIZE = int(os.environ.get("SVTR_BATCH_SIZE", 4))


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


# --- Label Studio tasks (the backend's /predict and `svtr-label push`) ---------------------------


def empty(reason: str | None = None) -> dict[str, Any]:
    """The answer for a task without a usable image: Label Studio pairs results by position."""
    out: dict[str, Any] = {"result": [], "score": 0}
    if reason:
        out["error"] = reason  # ignored by Label Studio, read by people testing with curl
    return out


def failed(task: Any, reason: str) -> dict[str, Any]:
    task_id = task.get("id") if isinstance(task, dict) else None
    log.warning("task %s: no prediction: %s", task_id, reason)
    return empty(reason)


def task_image(task: Any, config: LabelConfig, fetch: ImageFetcher) -> DecodedImage:
    """The decoded image of a task (fetched under the URL policy, size limits applied)."""
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise ImageError("the task has no 'data' object")
    url = task["data"].get(config.data_key)
    if url is None:
        raise ImageError(f"the task's data has no {config.data_key!r} key (the labeling config reads ${config.data_key})")
    return decode_image(fetch.fetch(url, task.get("id")), str(url))


def page_answer(page: Page, config: LabelConfig) -> dict[str, Any]:
    return {"result": page_to_results(page, config), "score": round(page.score, 6), "model_version": page.model_version}


def predict_tasks(
    tasks: list[Any],
    config: LabelConfig,
    engine: OcrEngine,
    fetch: ImageFetcher,
    cache: PredictionCache | None = None,
    batch_size: int = BATCH_SIZE,
) -> list[dict[str, Any]]:
    """One prediction per task, in order; a task whose image fails gets `empty(reason)`.
    Shared by /predict and `svtr-label push`. Images are fetched and decoded one batch at a
    time, so a 100-task request never holds 100 decoded pages in memory."""
    answers: list[dict[str, Any]] = []
    for start in range(0, len(tasks), max(batch_size, 1)):
        answers.extend(_predict_batch_of_tasks(tasks[start : start + batch_size], config, engine, fetch, cache))
    return answers


def _predict_batch_of_tasks(
    tasks: list[Any], config: LabelConfig, engine: OcrEngine, fetch: ImageFetcher, cache: PredictionCache | None
) -> list[dict[str, Any]]:
    answers: list[dict[str, Any] | None] = [None] * len(tasks)
    pending: list[tuple[int, DecodedImage]] = []
    for i, task in enumerate(tasks):
        try:
            image = task_image(task, config, fetch)
        except ImageError as exc:
            answers[i] = failed(task, str(exc))
            continue
        hit = cache.get(image.sha256, engine.model_version) if cache is not None else None
        if hit is not None:
            answers[i] = page_answer(hit, config)
        else:
            pending.append((i, image))
    # predict_batch retries image by image when the pipeline fails on a batch: one bad input fails alone.
    for i, outcome in predict_batch(engine, pending) if pending else []:
        if isinstance(outcome, Page):
            if cache is not None:
                cache.put(outcome)
            answers[i] = page_answer(outcome, config)
        else:
            answers[i] = failed(tasks[i], outcome)
    return [a if a is not None else empty() for a in answers]
