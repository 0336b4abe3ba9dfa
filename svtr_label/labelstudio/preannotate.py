"""Pre-annotation of Label Studio tasks (the backend's /predict and `svtr-label push`): fetch each
task's image, look up the cache, predict, and answer one prediction per task, in order.

Each task is one job (fetch, cache lookup, decode, predict); `fetch_threads` jobs run at once, so
downloads overlap inference, and a job holds its decoded pixels from the process's PixelBudget
only while it needs them. A task whose image fails gets an empty answer with its reason; the
others go on.

A multi-page task (the config's Image reads a list: valueList) is one job over its pages, one page
at a time, each fetched under the same rules as a single image; its answer carries every page's
results with their `item_index`. One page that fails fails that task, naming the page.
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
from svtr_label.labelstudio.format import LabelConfig, document_results, document_score, page_to_results
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


def task_refs(task: Any, config: LabelConfig, limits: ImageLimits = ImageLimits()) -> list[Any]:
    """The image values of a task's pages, as the labeling config reads them: one for `value=`,
    the list of `valueList=` (at most limits.max_pages). Each is checked when it is fetched."""
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        raise ImageError("the task has no 'data' object")
    key = config.data_key
    value = task["data"].get(key)
    if value is None:
        raise ImageError(f"the task's data has no {key!r} key (the labeling config reads ${key})")
    if not config.multipage:
        if isinstance(value, list):
            raise ImageError(f"the task's {key!r} is a list of {len(value)} images: a multi-page task needs a labeling "
                             f'config whose <Image> reads it with valueList="${key}" (see `svtr-label config --multipage`)')
        return [value]
    if not isinstance(value, list) or not value:
        raise ImageError(f"the task's {key!r} must be a non-empty list of image URLs: the labeling config reads it "
                         f'with valueList="${key}"')
    if len(value) > limits.max_pages:
        raise ImageError(f"the task has {len(value)} pages, over the {limits.max_pages}-page limit (SVTR_MAX_PAGES)")
    return value


def task_image_bytes(task: Any, config: LabelConfig, fetch: ImageFetcher, index: int | None = None) -> tuple[bytes, str]:
    """The bytes of a task's image and its ref (fetched under the URL policy and byte limit).
    `index`: the page of a multi-page task; None for a task that must have one image."""
    refs = task_refs(task, config)
    if index is None:
        if len(refs) > 1:
            raise ImageError(f"a task of {len(refs)} pages, where one image was expected (multi-page tasks are "
                             "pre-annotated by the ML backend and `svtr-label push` without --ray)")
        index = 0
    if not 0 <= index < len(refs):
        raise ImageError(f"the task has no page {index + 1} (it has {len(refs)})")
    url = refs[index]
    return fetch.fetch(url, task.get("id")), str(url)


def task_image(task: Any, config: LabelConfig, fetch: ImageFetcher, limits: ImageLimits = ImageLimits(),
               index: int = 0) -> DecodedImage:
    """The decoded image of a task (its page `index` for a multi-page task), fetched under the URL
    policy, size limits applied."""
    data, name = task_image_bytes(task, config, fetch, index)
    return decode_image(data, name, limits=limits)


def page_answer(page: Page, config: LabelConfig) -> PredictionAnswer:
    return {"result": page_to_results(page, config), "score": round(page.score, 6), "model_version": page.model_version}


def document_answer(pages: list[Page], config: LabelConfig) -> PredictionAnswer:
    """The answer for a multi-page task: every page's results, each with its item_index."""
    return {"result": document_results(pages, config), "score": round(document_score(pages), 6),
            "model_version": pages[0].model_version}


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


class _OcrFailed(Exception):
    """The pipeline failed on a page (its own errors are plain Exceptions): the message says which."""


def _answer(task: Any, config: LabelConfig, engine: OcrEngine, fetch: ImageFetcher, cache: PredictionCache | None,
            limits: ImageLimits, budget: PixelBudget) -> PredictionAnswer:
    """One task's answer: a failure, or its pages' predictions (cache hits or fresh)."""
    try:
        refs = task_refs(task, config, limits)
        pages = []
        for index in range(len(refs)):
            try:
                pages.append(_page(task, index, config, engine, fetch, cache, limits, budget))
            except (ImageError, _OcrFailed) as exc:
                if not config.multipage:
                    raise
                raise _OcrFailed(f"page {index + 1} of {len(refs)}: {exc}") from None
    except (ImageError, _OcrFailed) as exc:
        return failed(task, str(exc))
    except Exception as exc:  # a defect of ours must fail this task, not the request around it
        log.exception("task %s: unexpected error", task.get("id") if isinstance(task, dict) else None)
        return failed(task, f"internal error ({type(exc).__name__}: {exc}); see the backend's log")
    return document_answer(pages, config) if config.multipage else page_answer(pages[0], config)


def _page(task: Any, index: int, config: LabelConfig, engine: OcrEngine, fetch: ImageFetcher,
          cache: PredictionCache | None, limits: ImageLimits, budget: PixelBudget) -> Page:
    """One page of a task: fetched, then a cache hit or predicted (and cached); its decoded pixels
    are held from the budget only while it is predicted."""
    data, name = task_image_bytes(task, config, fetch, index)
    sha = sha256_bytes(data)
    hit = cache.get(sha, engine.model_version) if cache is not None else None
    if hit is not None:
        return hit
    width, height = image_size(data, name, limits)
    with budget.hold(width * height):
        image = decode_image(data, name, limits=limits, sha256=sha)
        try:
            page = engine.predict_one(image)
        except Exception as exc:  # the pipeline's own errors are plain Exceptions
            raise _OcrFailed(f"{name}: OCR failed ({type(exc).__name__}: {exc})") from None
        finally:
            del image
    if width * height >= LARGE_IMAGE_PIXELS:
        return_freed_memory()
    if cache is not None:
        cache.put(page)
    return page
