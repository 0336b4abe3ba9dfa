"""Pre-annotation of Label Studio tasks (the backend's /predict and `svtr-label push`): fetch each
task's image, look up the cache, predict, and answer one prediction per task, in order.

Each task is one job (fetch, cache lookup, decode, predict); `fetch_threads` jobs run at once, so
downloads overlap inference, and a job holds its decoded pixels from the process's PixelBudget
only while it needs them. A task whose image fails gets an empty answer with its reason; the
others go on.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from svtr_label.core.budget import LARGE_IMAGE_PIXELS, PixelBudget, return_freed_memory
from svtr_label.core.images import DecodedImage, decode_image, image_size, sha256_bytes
from svtr_label.core.page import Page
from svtr_label.errors import ImageError
from svtr_label.labelstudio.fetch import ImageFetcher
from svtr_label.labelstudio.format import LabelConfig, page_to_results
from svtr_label.labelstudio.payloads import PredictionAnswer
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


def task_image_bytes(task: Any, config: LabelConfig, fetch: ImageFetcher) -> tuple[bytes, str]:
    """The bytes of a task's image and its ref (fetched under the URL policy and byte limit)."""
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise ImageError("the task has no 'data' object")
    url = task["data"].get(config.data_key)
    if url is None:
        raise ImageError(f"the task's data has no {config.data_key!r} key (the labeling config reads ${config.data_key})")
    return fetch.fetch(url, task.get("id")), str(url)


def task_image(task: Any, config: LabelConfig, fetch: ImageFetcher, limits: ImageLimits = ImageLimits()) -> DecodedImage:
    """The decoded image of a task (fetched under the URL policy, size limits applied)."""
    data, name = task_image_bytes(task, config, fetch)
    return decode_image(data, name, limits=limits)


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
    budget: PixelBudget | None = None,
) -> list[PredictionAnswer]:
    """One prediction per task, in order; a task whose image fails gets `empty(reason)`.
    Shared by /predict and `svtr-label push`.

    `budget`: decoded pixels held at once, shared by every caller of the process (Services'); a
    budget of this call alone when None."""
    budget = budget or PixelBudget(settings.max_inflight_pixels)
    jobs = max(settings.fetch_threads, engine.workers)
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="svtr-task") as pool:
        futures = [pool.submit(_answer, task, config, engine, fetch, cache, limits, budget) for task in tasks]
        return [f.result() for f in futures]


def _answer(task: Any, config: LabelConfig, engine: OcrEngine, fetch: ImageFetcher, cache: PredictionCache | None,
            limits: ImageLimits, budget: PixelBudget) -> PredictionAnswer:
    """One task's answer: a failure, a cache hit, or a fresh prediction."""
    try:
        data, name = task_image_bytes(task, config, fetch)
        sha = sha256_bytes(data)
        hit = cache.get(sha, engine.model_version) if cache is not None else None
        if hit is not None:
            return page_answer(hit, config)
        width, height = image_size(data, name, limits)
        with budget.hold(width * height):
            image = decode_image(data, name, limits=limits, sha256=sha)
            try:
                page = engine.predict_one(image)
            except Exception as exc:  # the pipeline's own errors are plain Exceptions
                return failed(task, f"{name}: OCR failed ({type(exc).__name__}: {exc})")
            finally:
                del image
        if width * height >= LARGE_IMAGE_PIXELS:
            return_freed_memory()
    except ImageError as exc:
        return failed(task, str(exc))
    except Exception as exc:  # a defect of ours must fail this task, not the request around it
        log.exception("task %s: unexpected error", task.get("id") if isinstance(task, dict) else None)
        return failed(task, f"internal error ({type(exc).__name__}: {exc}); see the backend's log")
    if cache is not None:
        cache.put(page)
    return page_answer(page, config)
