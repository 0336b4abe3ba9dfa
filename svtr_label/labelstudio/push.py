"""Pre-annotate a whole Label Studio project through its API, outside Label Studio's request timeouts.

Predictions are made and imported chunk by chunk, so an interrupted run loses at most one chunk,
and a rerun skips every task that already holds a prediction of the same model_version (what
Label Studio's own "retrieve predictions" does). A task whose image fails gets no prediction:
the next run retries it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence, cast

from svtr_label.core.budget import PixelBudget
from svtr_label.labelstudio.client import LabelStudio
from svtr_label.labelstudio.fetch import ImageFetcher
from svtr_label.labelstudio.format import LabelConfig
from svtr_label.labelstudio.payloads import Prediction, Task
from svtr_label.labelstudio.preannotate import predict_tasks
from svtr_label.ocr.cache import PredictionCache
from svtr_label.ocr.engine import OcrEngine
from svtr_label.settings import ImageLimits, PreannotateSettings


@dataclass
class PushReport:
    """What one `push` run did."""

    tasks: int = 0  # tasks selected
    already: int = 0  # of which already held a prediction of this model_version
    created: int = 0  # predictions Label Studio created
    failed: list[str] = field(default_factory=list)  # "task N: reason", to retry with a rerun


def has_prediction(task: Task, model_version: str) -> bool:
    versions = list(task.get("predictions_model_versions") or [])
    versions += [p.get("model_version", "") for p in task.get("predictions") or [] if isinstance(p, dict)]
    return model_version in versions


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]


def push_predictions(
    ls: LabelStudio,
    project: int,
    engine: OcrEngine,
    fetch: ImageFetcher,
    cache: PredictionCache | None = None,
    *,
    view: int | None = None,
    ids: Sequence[int] | None = None,
    chunk: int = 50,
    settings: PreannotateSettings = PreannotateSettings(),
    limits: ImageLimits = ImageLimits(),
    budget: PixelBudget | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> PushReport:
    """Predict the project's tasks (a view's, or the ids given) that lack this engine's
    model_version, importing each chunk's predictions as soon as it is done.
    `on_chunk(done, total)` is called after each chunk (a progress bar)."""
    config = LabelConfig.parse(ls.project(project)["label_config"])
    tasks = list(ls.tasks(project, view=view, ids=ids))
    todo = [t for t in tasks if not has_prediction(t, engine.model_version)]
    report = PushReport(tasks=len(tasks), already=len(tasks) - len(todo))
    done = 0
    for part in chunks(todo, chunk):
        answers = predict_tasks(list(part), config, engine, fetch, cache, settings, limits, budget)
        ready = [cast(Prediction, {"task": t["id"], **a}) for t, a in zip(part, answers) if "error" not in a]
        report.failed += [f"task {t['id']}: {a['error']}" for t, a in zip(part, answers) if "error" in a]
        report.created += ls.import_predictions(project, ready)
        done += len(part)
        if on_chunk is not None:
            on_chunk(done, len(todo))
    return report
