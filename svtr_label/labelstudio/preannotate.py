"""Pre-annotation of Label Studio tasks (the backend's /predict and `svtr-label push`): fetch each
task's image, look up the cache, predict, and answer one prediction per task, in order.

Tasks go in batches, the next batch's images being fetched and decoded while the current one is
inferred. A task whose image fails gets an empty answer with its reason; the others go on.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from svtr_label.core.images import DecodedImage, decode_image
from svtr_label.core.page import Page
from svtr_label.errors import ImageError
from svtr_label.labelstudio.fetch import ImageFetcher
from svtr_label.labelstudio.format import LabelConfig, page_to_results
from svtr_label.labelstudio.payloads import PredictionAnswer
from svtr_label.ocr.annotate import predict_batch
from svtr_label.ocr.cache import PredictionCache
from svtr_label.ocr.engine import OcrEngine
from svtr_label.settings import ImageLimits, PreannotateSettings

log = logging.getLogger(__name__)



def empty(reason: str | None = None) -> PredictionAnswer:
    """The answer for a task without a usable image: Label Studio pairs results by position."""
    out: PredictionAnswer = {"result": [], "score": 0}
    if reason:
        out["error"] = reason  # ignored by Label Studio, read by people testing with curl
    return out


def failed(task: Any, reason: str) -> PredictionAnswer:
    task_id = task.get("id") if isinstance(task, dict) else None
    log.warning("task %s: no prediction: %s", task_id, reason)
    return empty(reason)


def task_image(task: Any, config: LabelConfig, fetch: ImageFetcher, limits: ImageLimits = ImageLimits()) -> DecodedImage:
    """The decoded image of a task (fetched under the URL policy, size limits applied)."""
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise ImageError("the task has no 'data' object")
    url = task["data"].get(config.data_key)
    if url is None:
        raise ImageError(f"the task's data has no {config.data_key!r} key (the labeling config reads ${config.data_key})")
    return decode_image(fetch.fetch(url, task.get("id")), str(url), limits=limits)


def page_answer(page: Page, config: LabelConfig) -> PredictionAnswer:
    return {"result": page_to_results(page, config), "score": round(page.score, 6), "model_version": page.model_version}


def predict_tasks(
    tasks: list[Any],
    config: LabelConfig,
    engine: OcrEngine,
    fetch: ImageFetcher,
    cache: PredictionCache | None = None,
    settings: PreannotateSettings = PreannotateSettings(),
    limits: ImageLimits = ImageLimits(),
) -> list[PredictionAnswer]:
    """One prediction per task, in order; a task whose image fails gets `empty(reason)`.
    Shared by /predict and `svtr-label push`.

    The images of the next batch are fetched and decoded (`settings.fetch_threads` at a time) while the
    current batch is inferred: network waits hide behind inference, and at most two batches of
    decoded pages are held, so a 1000-task push never holds 1000 pages in memory."""
    size = settings.batch_size
    batches = [tasks[start : start + size] for start in range(0, len(tasks), size)]
    answers: list[PredictionAnswer] = []
    with ThreadPoolExecutor(max_workers=settings.fetch_threads, thread_name_prefix="svtr-fetch") as pool:

        def prefetch(batch: list[Any]) -> list[Future[PredictionAnswer | DecodedImage]]:
            return [pool.submit(_task_input, task, config, engine, fetch, cache, limits) for task in batch]

        ahead = prefetch(batches[0]) if batches else []
        for k, batch in enumerate(batches):
            current, ahead = ahead, prefetch(batches[k + 1]) if k + 1 < len(batches) else []
            answers.extend(_predict_loaded(batch, [f.result() for f in current], config, engine, cache))
    return answers


def _task_input(
    task: Any, config: LabelConfig, engine: OcrEngine, fetch: ImageFetcher, cache: PredictionCache | None, limits: ImageLimits
) -> PredictionAnswer | DecodedImage:
    """The task's decoded image to predict, or its answer already (a failure, or a cache hit)."""
    try:
        image = task_image(task, config, fetch, limits)
    except ImageError as exc:
        return failed(task, str(exc))
    except Exception as exc:  # a defect of ours must fail this task, not the batch around it
        log.exception("task %s: unexpected error reading its image", task.get("id") if isinstance(task, dict) else None)
        return failed(task, f"internal error reading the image ({type(exc).__name__}: {exc}); see the backend's log")
    hit = cache.get(image.sha256, engine.model_version) if cache is not None else None
    return page_answer(hit, config) if hit is not None else image


def _predict_loaded(
    tasks: list[Any],
    inputs: list[PredictionAnswer | DecodedImage],
    config: LabelConfig,
    engine: OcrEngine,
    cache: PredictionCache | None,
) -> list[PredictionAnswer]:
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
