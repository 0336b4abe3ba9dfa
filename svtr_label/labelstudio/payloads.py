"""Label Studio's JSON as types: tasks, predictions, annotations, results, webhook events.

Label Studio sends and accepts these as plain JSON objects; the TypedDicts name the keys svtr-label
reads and writes, so a reader sees the shape and a type checker catches a misspelt key. They are
`total=False`: Label Studio omits keys freely (an export without ids, a webhook task without
results), and every reader must cope. Values from the network are still checked where they are read.
"""

from __future__ import annotations

from typing import Any, TypedDict, Union, cast

from svtr_label.errors import RequestError


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
    item_index: int  # the page of a multi-page task (<Image valueList=...>), 0-based


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




# --- checking what arrives from the network ----------------------------------------------------

MAX_ID = 2**63 - 1  # Label Studio's ids are 64-bit database keys


def check_id(value: Any, what: str) -> int:
    """A Label Studio id, or RequestError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise RequestError(f"{what} must be a whole number from 0 to 2**63-1, as Label Studio's ids are; got {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _check_annotation(ann: Any, what: str) -> None:
    ann = _object(ann, what)
    if "id" in ann:
        check_id(ann["id"], f"{what}.id")
    results = ann.get("result")
    if results is not None and not (isinstance(results, list) and all(isinstance(r, dict) for r in results)):
        raise RequestError(f"{what}.result must be a list of result objects")
    for key in ("created_at", "updated_at"):
        if ann.get(key) is not None and not isinstance(ann[key], str):
            raise RequestError(f"{what}.{key} must be a timestamp string")


def parse_webhook(body: dict[str, Any]) -> WebhookEvent:
    """A webhook body checked for the types svtr-label relies on: an action, a task object with a
    whole-number id and a data object, annotation objects with whole-number ids and result lists.
    Anything else is a RequestError (HTTP 400) naming the field."""
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise RequestError("a webhook body needs an 'action' (e.g. ANNOTATION_CREATED)")
    if body.get("task") is not None:
        task = _object(body["task"], "task")
        if "id" in task:
            check_id(task["id"], "task.id")
        if task.get("data") is not None:
            _object(task["data"], "task.data")
    if body.get("annotation") is not None:
        _check_annotation(body["annotation"], "annotation")
    if body.get("annotations") is not None:
        if not isinstance(body["annotations"], list):
            raise RequestError("annotations must be a list")
        for i, ann in enumerate(body["annotations"]):
            _check_annotation(ann, f"annotations[{i}]")
    if body.get("project") is not None:
        _object(body["project"], "project")
    return cast(WebhookEvent, body)


__all__ = ["Annotation", "Prediction", "PredictionAnswer", "Result", "ResultValue", "Task", "WebhookEvent", "check_id", "parse_webhook"]
