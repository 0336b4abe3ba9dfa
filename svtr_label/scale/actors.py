"""What runs on the Ray cluster: read tasks (downloads, at num_cpus=0), decode tasks (GPU jobs only)
and the OCR actors. Each actor builds its engine once, from small constructor arguments (the
settings), and predicts every batch it is given with its own pipelines.

Stages take batches as pyarrow tables (missing values stay None) and return dicts of lists; values
cross process boundaries as plain bytes, strings and numbers.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np

from svtr_label.core.images import DecodedImage, decode_image, sha256_bytes
from svtr_label.errors import ImageError, SvtrLabelError
from svtr_label.labelstudio.fetch import ImageFetcher
from svtr_label.labelstudio.format import LabelConfig
from svtr_label.labelstudio.preannotate import page_answer, task_image_bytes
from svtr_label.ocr.annotate import Input, Outcome, annotate
from svtr_label.scale.inputs import WEB_SCHEMES, read_input
from svtr_label.scale.output import COLUMNS, Row
from svtr_label.services import Services
from svtr_label.settings import FetchSettings, ImageLimits, Settings, quiet_third_parties

Batch = dict[str, Any]


def column(batch: Batch, name: str) -> list[Any]:
    """One column of a batch as a Python list (missing values as None, which numpy batches would turn into NaN)."""
    if hasattr(batch, "column_names"):  # a pyarrow.Table: the format every stage asks for
        return batch.column(name).to_pylist() if name in batch.column_names else []
    values = batch.get(name)
    return [] if values is None else list(values)


def _failure(uri: str, exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"{uri}: cannot read ({exc.strerror or exc})"
    return str(exc)


# --- stage 1: read (num_cpus=0) -------------------------------------------------------------------


def read_batch(batch: Batch, max_bytes: int, fetch: FetchSettings) -> Batch:
    """{uri} -> {uri, data, read_error}: one input's bytes, or why they could not be had."""
    uris = column(batch, "uri")
    fetcher = ImageFetcher(fetch) if any(u.startswith(WEB_SCHEMES) for u in uris) else None
    data: list[bytes | None] = []
    errors: list[str | None] = []
    for uri in uris:
        try:
            data.append(read_input(uri, max_bytes, fetcher))
            errors.append(None)
        except (OSError, SvtrLabelError) as exc:
            data.append(None)
            errors.append(_failure(uri, exc))
    return {"uri": uris, "data": data, "read_error": errors}


def read_task_batch(batch: Batch, config_xml: str, fetch: FetchSettings) -> Batch:
    """{task} (JSON) -> {task_id, uri, data, read_error}: a Label Studio task's image bytes."""
    config = LabelConfig.parse(config_xml)
    fetcher = ImageFetcher(fetch)
    out: Batch = {"task_id": [], "uri": [], "data": [], "read_error": []}
    for raw in column(batch, "task"):
        task = json.loads(raw)
        out["task_id"].append(int(task["id"]))
        try:
            data, name = task_image_bytes(task, config, fetcher)
            out["uri"].append(name)
            out["data"].append(data)
            out["read_error"].append(None)
        except SvtrLabelError as exc:
            out["uri"].append(str((task.get("data") or {}).get(config.data_key, "")))
            out["data"].append(None)
            out["read_error"].append(str(exc))
    return out


# --- stage 2 (GPU jobs): decode on CPU nodes --------------------------------------------------------


def decode_batch(batch: Batch, limits: ImageLimits) -> Batch:
    """{uri, data, read_error} -> {uri, pixels, height, width, sha256, read_error}: CPU nodes decode,
    GPU actors only infer. Pixels travel as raw BGR bytes with their shape."""
    out: Batch = {"uri": [], "pixels": [], "height": [], "width": [], "sha256": [], "read_error": []}
    for uri, data, error in zip(column(batch, "uri"), column(batch, "data"), column(batch, "read_error")):
        pixels, sha, height, width = None, None, 0, 0
        if error is None:
            try:
                image = decode_image(data, uri, limits=limits)
                pixels, sha, height, width = image.bgr.tobytes(), image.sha256, image.height, image.width
            except ImageError as exc:
                error, sha = str(exc), sha256_bytes(data)
        out["uri"].append(uri)
        out["pixels"].append(pixels)
        out["height"].append(height)
        out["width"].append(width)
        out["sha256"].append(sha)
        out["read_error"].append(error)
    return out


# --- stage 3: the OCR actors -------------------------------------------------------------------------


def actor_settings(settings: Settings, pipelines: int, threads: int, gpu: bool) -> Settings:
    """An actor's engine settings: its pipelines and inference threads set explicitly (Ray sets
    OMP_NUM_THREADS=1 in its workers, which would otherwise decide), on the GPU Ray gave it."""
    engine = replace(settings.engine, workers=pipelines, cpu_threads=threads, device="gpu:0" if gpu else settings.engine.device)
    return replace(settings, engine=engine)


class PagePredictor:
    """An OCR actor: the engine is built once, in the constructor; each call predicts one batch."""

    def __init__(self, settings: Settings) -> None:
        quiet_third_parties()  # before paddlex and onnxruntime are imported in this worker
        import ray

        self.services = Services(settings)
        self.engine = self.services.engine().load()
        self.cache = self.services.prediction_cache()
        self.limits = settings.images
        self.node = ray.util.get_node_ip_address()

    def outcomes(self, batch: Batch) -> list[Outcome]:
        uris, errors = column(batch, "uri"), column(batch, "read_error")
        pixels = column(batch, "pixels")
        if pixels:  # decoded by a CPU task
            shapes = zip(column(batch, "height"), column(batch, "width"))
            return [self._predict_decoded(u, p, hw, s, e) for u, p, hw, s, e in zip(uris, pixels, shapes, column(batch, "sha256"), errors)]
        inputs = [Input(u, _reader(u, d, e)) for u, d, e in zip(uris, column(batch, "data"), errors)]
        return list(annotate(inputs, self.engine, self.cache, self.limits))

    def _predict_decoded(self, uri: str, pixels: bytes | None, shape: tuple[int, int], sha: str | None, error: str | None) -> Outcome:
        if error is not None or pixels is None:
            return Outcome(uri, error=error, sha256=sha)
        bgr = np.frombuffer(pixels, dtype=np.uint8).reshape(shape[0], shape[1], 3)
        try:
            page = self.engine.predict_one(DecodedImage(bgr, sha or "", uri))
        except Exception as exc:  # the pipeline's own errors are plain Exceptions
            return Outcome(uri, error=f"{uri}: OCR failed ({type(exc).__name__}: {exc})", sha256=sha)
        return Outcome(uri, page.with_(source=uri), sha256=sha)

    def __call__(self, batch: Batch) -> Batch:
        rows = [Row(o.name, self.engine.model_version, o.sha256, o.page, o.error, self.node) for o in self.outcomes(batch)]
        return rows_to_columns(rows)


class TaskPredictor(PagePredictor):
    """An OCR actor for Label Studio tasks: answers in the ML backend's prediction format."""

    def __init__(self, settings: Settings, config_xml: str) -> None:
        super().__init__(settings)
        self.config = LabelConfig.parse(config_xml)

    def __call__(self, batch: Batch) -> Batch:
        outcomes = self.outcomes(batch)
        answers = [json.dumps(page_answer(o.page, self.config), ensure_ascii=False) if o.page is not None else None for o in outcomes]
        return {"task_id": column(batch, "task_id"), "answer": answers, "error": [o.error for o in outcomes],
                "node": [self.node] * len(outcomes)}


def _reader(uri: str, data: bytes | None, error: str | None) -> Callable[[], bytes]:
    def read() -> bytes:
        if error is not None or data is None:
            raise ImageError(error or f"{uri}: no bytes were read")
        return data

    return read


def rows_to_columns(rows: Sequence[Row]) -> Batch:
    records = [r.to_record() for r in rows]
    return {name: [rec[name] for rec in records] for name in COLUMNS}  # type: ignore[literal-required]


def columns_to_rows(batch: Batch) -> list[Row]:
    columns = {name: column(batch, name) for name in COLUMNS}
    return [Row.from_record({name: columns[name][i] for name in COLUMNS}) for i in range(len(columns["uri"]))]  # type: ignore[misc]
