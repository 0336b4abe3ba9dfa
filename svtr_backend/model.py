"""The Label Studio ML backend: SVTRv2 (PaddleOCR) pre-annotation, interactive re-recognition of
drawn regions, and corrections from webhooks into the svtr-label store.

Follows label-studio-ml's model convention (2.x method signatures: `setup`,
`predict(tasks, context=None, **kwargs)`, `fit(event, data, **kwargs)`) under label-studio-ml 2.x
and 1.0.9 alike. Model instances are cheap and built per request by svtr_backend.app; the OCR
engine, the image fetcher, the prediction cache and the store live in the `Services` the app was
built with, shared by every thread. label-studio-ml's base constructor is not run: it keeps
per-project state in its own cache (2.x: SQLite in MODEL_DIR) that svtr-label has no use for.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, cast

from svtr_label.settings import prepare_label_studio_ml

prepare_label_studio_ml()  # label-studio-ml 2.x opens its SQLite cache when imported: not in the working folder
from label_studio_ml.model import LabelStudioMLBase  # noqa: E402

from svtr_label.core.images import DecodedImage
from svtr_label.core.page import Region
from svtr_label.errors import ImageError
from svtr_label.labelstudio.format import (
    LabelConfig,
    recommended_config,
    results_by_item,
    results_to_regions,
)
from svtr_label.labelstudio.payloads import (
    PredictionAnswer,
    Result,
    ResultValue,
    Task,
    WebhookEvent,
)
from svtr_label.labelstudio.preannotate import empty, failed, predict_tasks, task_image
from svtr_label.ocr.engine import OcrEngine
from svtr_label.services import Services
from svtr_label.settings import Settings

log = logging.getLogger(__name__)

# ANNOTATIONS_DELETED (plural) is what Label Studio 1.23 sends for API and Data Manager deletions.
WEBHOOK_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED", "ANNOTATIONS_DELETED")
# Keys of a drawn shape's value that are not geometry: dropped when the geometry is copied.
NON_GEOMETRY = ("labels", "rectanglelabels", "polygonlabels", "text")


def serving_settings(settings: Settings) -> Settings:
    """The backend's defaults over the environment's: unless SVTR_WORKERS says otherwise, one
    pipeline uses every core, since Label Studio waits on each request and latency per image
    counts more here than images per second."""
    return replace(settings, engine=replace(settings.engine, workers=settings.engine.workers or 1))


class SvtrBackend(LabelStudioMLBase):
    """Pre-annotates text lines (polygon or rectangle + per-region transcription)."""

    def __init__(self, services: Services, label_config: str | None = None, project_id: str | None = None) -> None:
        self.services = services
        self._label_config = label_config
        self.project_id = project_id or ""
        self.setup()

    @property
    def label_config(self) -> str | None:  # type: ignore[override]
        """The project's labeling config as this request gave it (label-studio-ml 2.x would read its cache)."""
        return self._label_config

    def setup(self) -> None:
        """Check the labeling config (a clear ConfigError); the engine is the services' and loaded once."""
        self.config = LabelConfig.parse(self.label_config or recommended_config())

    @property
    def engine(self) -> OcrEngine:
        return self.services.engine()

    @property
    def model_version(self) -> str:  # type: ignore[override]
        return self.engine.model_version

    # -- predict ---------------------------------------------------------------------------------

    def predict(self, tasks: list[Task], context: dict[str, Any] | None = None, **kwargs: Any) -> list[PredictionAnswer]:
        """One entry per task, in order. With drawn regions in `context`: only those, re-read."""
        drawn = (context or {}).get("result") if isinstance(context, dict) else None
        if drawn and tasks:
            return [self.recognize_drawn(tasks[0], drawn)] + [empty() for _ in tasks[1:]]
        return self.predict_pages(tasks)

    def predict_pages(self, tasks: list[Task]) -> list[PredictionAnswer]:
        s = self.services
        return predict_tasks(tasks, self.config, self.engine, s.fetcher(), s.prediction_cache(),
                             s.settings.preannotate, s.settings.images, s.pixel_budget())

    def load_image(self, task: Task, index: int = 0) -> DecodedImage:
        """The task's image; `index`: the page of a multi-page task."""
        return task_image(task, self.config, self.services.fetcher(), self.services.settings.images, index)

    # -- interactive -----------------------------------------------------------------------------

    def recognize_drawn(self, task: Task, drawn: list[Result]) -> PredictionAnswer:
        """Read the text inside the regions the user drew; answer with their own ids and shapes.
        In a multi-page task each region is read on its own page (its result's item_index)."""
        shapes = [r for r in drawn if isinstance(r, dict)]
        pages = results_by_item(shapes) if self.config.multipage else {0: shapes}
        result: list[Result] = []
        scores: list[float] = []
        for index, on_page in sorted(pages.items()):
            try:
                image = self.load_image(task, index)
            except ImageError as exc:
                return failed(task, str(exc) if not self.config.multipage else f"page {index + 1}: {exc}")
            regions = results_to_regions(on_page, image.width, image.height)
            if not regions:
                continue
            texts = self.engine.recognize(image, [r.points for r in regions])
            for region, rec in zip(regions, texts):
                parts = [r for r in on_page if str(r.get("id")) == region.id]
                result.extend(self._region_answer(parts, region, rec.text, rec.score, image))
            scores.extend(t.score for t in texts)
        if not scores:
            return empty("the context holds no rectangle or polygon to read")
        return {"result": result, "score": round(sum(scores) / len(scores), 6), "model_version": self.model_version}

    def _region_answer(self, parts: list[Result], region: Region, text: str, score: float, image: DecodedImage) -> list[Result]:
        """The drawn shape and labels as they were (the box must not move), plus its text (on the
        shape's page: item_index kept)."""
        kept = [p for p in parts if p.get("type") != "textarea"]
        shape = next((p for p in kept if any(k in p.get("value", {}) for k in ("points", "x"))), kept[0] if kept else parts[0])
        geometry = {k: v for k, v in shape.get("value", {}).items() if k not in NON_GEOMETRY}
        textarea: Result = {
            "id": region.id,
            "from_name": self.config.textarea,
            "to_name": shape.get("to_name") or self.config.image,
            "type": "textarea",
            "original_width": shape.get("original_width") or image.width,
            "original_height": shape.get("original_height") or image.height,
            "image_rotation": shape.get("image_rotation", 0),
            "value": cast(ResultValue, {**geometry, "text": [text]}),
            "score": score,
        }
        if "item_index" in shape:
            textarea["item_index"] = shape["item_index"]
        return [cast(Result, {**p, "score": score}) for p in kept] + [textarea]

    # -- webhooks --------------------------------------------------------------------------------

    def fit(self, event: Any, data: WebhookEvent | None = None, **kwargs: Any) -> dict[str, Any]:
        """Annotation webhooks update the corrections store (idempotent: repeats and stale events change nothing)."""
        if event not in WEBHOOK_EVENTS or not isinstance(data, dict):
            return {"status": "ignored", "event": str(event)}
        data = self._with_annotator_email(data)
        changed = self.services.store().apply_webhook({**data, "action": event})
        return {"status": "stored" if changed else "unchanged", "event": event}

    def _with_annotator_email(self, data: WebhookEvent) -> WebhookEvent:
        """Webhooks name the annotator by user id; the store's history should say who, by e-mail.
        Looked up in Label Studio when the backend has its URL and key (once per user and process)."""
        ann = data.get("annotation")
        who = ann.get("completed_by") if isinstance(ann, dict) else None
        if not isinstance(who, int) or isinstance(who, bool):
            return data
        email = self.services.user_email(who)
        if email is None:
            return data
        return cast(WebhookEvent, {**data, "annotation": {**ann, "completed_by": {"id": who, "email": email}}})
