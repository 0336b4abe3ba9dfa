"""Pre-annotation of image files and of Label Studio tasks: read or fetch, look up the cache,
predict, report failures.

Files stream through one job per pipeline; tasks go in batches, the next batch's images being
fetched and decoded while the current one is inferred.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
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
# Downloads at a time while inference runs: fetching is network-bound, not CPU-bound.
FETCH_THREADS = int(os.environ.get("SVTR_FETCH_THREADS", 4))


@dataclass(frozen=True)
class Outcome:
    """What happened to one input file: a page, or the reason it was skipped."""

    path: Path
    page: Page | None = None
    error: str | None = None
    cached: bool = False


def annotate_files(paths: Iterable[Path], engine: OcrEngine, cache: PredictionCache | None = None) -> Iterator[Outcome]:
    """One Outcome per path, in input order. A bad file yields an error Outcome; the rest go on.

    Each file is read, hashed, looked up in the cache, decoded and predicted by one job; as many
    jobs run as the engine has pipelines, and as many more wait, so no pipeline waits for a
    file and no batch waits for its slowest page. Only the running jobs hold images."""
    workers = engine.workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="svtr-page") as pool:
        window: deque[Future[Outcome]] = deque()
        for path in paths:
            window.append(pool.submit(_annotate_file, Path(path), engine, cache))
            if len(window) >= 2 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def _annotate_file(path: Path, engine: OcrEngine, cache: PredictionCache | None) -> Outcome:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Outcome(path, error=f"{path}: cannot read ({exc.strerror or exc})")
    sha = sha256_bytes(data)
    hit = cache.get(sha, engine.model_version) if cache is not None else None
    if hit is not None:
        return Outcome(path, hit.with_(source=str(path)), cached=True)
    try:
        image = decode_image(data, str(path), sha256=sha)
    except ImageError as exc:
        return Outcome(path, error=str(exc))
    try:
        page = engine.predict_one(image)
    except Exception as exc:  # the pipeline's own errors are plain Exceptions
        return Outcome(path, error=f"{path}: OCR failed ({type(exc).__name__}: {exc})")
    if cache is not None:
        cache.put(page)
    return Outcome(path, page.with_(source=str(path)))


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
    fetch_threads: int = FETCH_THREADS,
) -> list[dict[str, Any]]:
    """One prediction per task, in order; a task whose image fails gets `empty(reason)`.
    Shared by /predict and `svtr-label push`.

    The images of the next batch are fetched and decoded (`fetch_threads` at a time) while the
    current batch is inferred: network waits hide behind inference, and at most two batches of
    decoded pages are held, so a 1000-task push never holds 1000 pages in memory."""
    batches = [tasks[start : start + batch_size] for start in range(0, len(tasks), max(batch_size, 1))]
    answers: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=max(fetch_threads, 1), thread_name_prefix="svtr-fetch") as pool:

        def prefetch(batch: list[Any]) -> list[Future[dict[str, Any] | DecodedImage]]:
            return [pool.submit(_task_input, task, config, engine, fetch, cache) for task in batch]

        ahead = prefetch(batches[0]) if batches else []
        for k, batch in enumerate(batches):
            current, ahead = ahead, prefetch(batches[k + 1]) if k + 1 < len(batches) else []
            answers.extend(_predict_loaded(batch, [f.result() for f in current], config, engine, cache))
    return answers


def _task_input(
    task: Any, config: LabelConfig, engine: OcrEngine, fetch: ImageFetcher, cache: PredictionCache | None
) -> dict[str, Any] | DecodedImage:
    """The task's decoded image to predict, or its answer already (a failure, or a cache hit)."""
    try:
        image = task_image(task, config, fetch)
    except ImageError as exc:
        return failed(task, str(exc))
    hit = cache.get(image.sha256, engine.model_version) if cache is not None else None
    return page_answer(hit, config) if hit is not None else image


def _predict_loaded(
    tasks: list[Any],
    inputs: list[dict[str, Any] | DecodedImage],
    config: LabelConfig,
    engine: OcrEngine,
    cache: PredictionCache | None,
) -> list[dict[str, Any]]:
    answers = [x if isinstance(x, dict) else None for x in inputs]
    pending = [(i, x) for i, x in enumerate(inputs) if isinstance(x, DecodedImage)]
    # predict_batch retries image by image when the pipeline fails on a batch: one bad input fails alone.
    for i, outcome in predict_batch(engine, pending) if pending else []:
        if isinstance(outcome, Page):
            if cache is not None:
                cache.put(outcome)
            answers[i] = page_answer(outcome, config)
        else:
            answers[i] = failed(tasks[i], outcome)
    return [a if a is not None else empty() for a in answers]
