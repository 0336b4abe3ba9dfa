"""Label Studio's JSON as types: tasks, predictions, annotations, results, webhook events.

Label Studio sends and accepts these as plain JSON objects; the TypedDicts name the keys svtr-label
reads and writes, so a reader sees the shape and a type checker catches a misspelt key. They are
`total=False`: Label Studio omits keys freely (an export without ids, a webhook task without
results), and every reader must cope. Values from the network are still checked where they are read.
"""

from __future__ import annotations

from typing import Any, TypedDict, Union


class ResultValue(TypedDict, total=False):
    """A result's `value`: a shape in percent of the image, and/or its labels or text."""

    points: list[list[float]]  # polygon corners
    x: float  # rectangle: top-left corner, size, and rotation in degrees about that corner
    y: float
    width: float
    height: float
    rotation: float
    text: list[str]  # textarea
    labels: list[str]
    polygonlabels: list[str]
    rectanglelabels: list[str]


class Result(TypedDict, total=False):
    """One result of a prediction or annotation. One text line is several results sharing one `id`."""

    id: str
    from_name: str
    to_name: str
    type: str  # "polygon", "rectangle", "labels", "textarea", ...
    value: ResultValue
    original_width: int
    original_height: int
    image_rotation: float
    score: float


class Prediction(TypedDict, total=False):
    id: int
    task: int  # when imported through /api/projects/{id}/import/predictions
    model_version: str
    score: float
    result: list[Result]


class Annotation(TypedDict, total=False):
    id: int
    result: list[Result]
    completed_by: Union[int, str, dict[str, Any]]  # a user id, or the user object in webhooks
    completed_by_name: str
    created_at: str
    updated_at: str
    was_cancelled: bool


class Task(TypedDict, total=False):
    id: int
    data: dict[str, Any]  # the labeling config's $keys, e.g. {"image": "/data/local-files/?d=a.png"}
    # Label Studio's JSON export lists predictions as ids, the task API as objects.
    predictions: list[Union[Prediction, int]]
    annotations: list[Annotation]
    predictions_model_versions: list[str]


class PredictionAnswer(TypedDict, total=False):
    """The backend's answer for one task; Label Studio pairs answers with tasks by position."""

    result: list[Result]
    score: float
    model_version: str
    error: str  # ignored by Label Studio, read by people testing with curl


class WebhookEvent(TypedDict, total=False):
    """A webhook body: ANNOTATION_CREATED/UPDATED/DELETED carry `task` and `annotation`;
    ANNOTATIONS_DELETED carries `annotations` (ids only)."""

    action: str
    task: Task
    annotation: Annotation
    annotations: list[Annotation]
    project: dict[str, Any]


__all__ = ["Annotation", "Prediction", "PredictionAnswer", "Result", "ResultValue", "Task", "WebhookEvent"]
