"""The OCR engine: PaddleOCR's pipeline, loaded once per process, shared safely between threads.

`predict` runs the whole pipeline on pages; `recognize` reads text inside given quads with the
pipeline's own crop and recognizer (re-recognition of an edited or user-drawn box).

On CPU the engine keeps one pipeline per worker, each with its own inference threads, and spreads
images over them. On ONNX Runtime, batch work (svtr-label predict, push) defaults to one
single-threaded pipeline per core: on 2 cores that is ~1.1x the images per second of one
2-threaded pipeline. Paddle Inference is the other way round (PP-OCRv4 mobile on 2 cores: one
2-threaded pipeline 0.32 img/s, two single-threaded ones 0.29), so it defaults to one pipeline on
every core, as the backend does for either engine: a single image then takes ~0.57x the time it
takes on one thread (benchmarks/bench.py measures ONNX Runtime).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from svtr_label.core.geometry import Point, as_points, bounding_quad
from svtr_label.core.images import DecodedImage, decode_image, read_image
from svtr_label.core.page import Page, regions_from_lines
from svtr_label.errors import ModelError
from svtr_label.ocr import sizing
from svtr_label.ocr.pool import PipelinePool
from svtr_label.ocr.profiles import ModelSpec, Profile, model_name_of, weights_digest
from svtr_label.settings import EngineSettings, quiet_third_parties

log = logging.getLogger(__name__)

ImageInput = Union[DecodedImage, bytes, str, os.PathLike]


def _default_workers(device: str, engine: str | None) -> int:
    """One single-threaded pipeline per core for ONNX Runtime on CPU; one pipeline otherwise (GPU,
    and Paddle Inference, whose own threads beat a pipeline per core: see the module docstring)."""
    if not device.startswith("cpu") or engine != "onnxruntime":
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def resolve_engine_settings(settings: EngineSettings, engine: str | None = None) -> EngineSettings:
    """Concrete worker, thread and batch sizes for this machine and inference `engine`."""
    workers = settings.workers or _default_workers(settings.device, engine)
    threads = settings.cpu_threads or max(1, (os.cpu_count() or 1) // workers)
    batch = settings.rec_batch_size or (1 if settings.device.startswith("cpu") and engine == "onnxruntime" else 6)
    return replace(settings, workers=workers, cpu_threads=threads, rec_batch_size=batch)


@dataclass(frozen=True)
class Recognition:
    text: str
    score: float


def as_decoded(image: ImageInput) -> DecodedImage:
    if isinstance(image, DecodedImage):
        return image
    if isinstance(image, (bytes, bytearray)):
        return decode_image(bytes(image))
    return read_image(image)


class OcrEngine:
    """PaddleOCR's OCR pipeline for one profile: build one per process and share it (Services.engine does).

    `paddlex_home`: where PaddleX keeps downloaded weights (Settings.paddlex_cache_home), to name
    them in model_version."""

    def __init__(self, profile: Profile, settings: EngineSettings = EngineSettings(), paddlex_home: Path | None = None) -> None:
        _refuse_unmappable_stages(profile)
        self.settings = resolve_engine_settings(settings, profile.engine)
        self.profile = _named(profile)
        self._pool = PipelinePool(lambda: _build_pipeline(self.profile, self.settings), self.settings.workers or 1)
        self._spread = ThreadPoolExecutor(max_workers=self._pool.size, thread_name_prefix="svtr-ocr")
        if self.profile.det.dir is None or self.profile.rec.dir is None:
            # Downloaded weights are only known after loading: name them in model_version.
            self.load()
        self.model_version = _model_version(self.profile, paddlex_home)

    def load(self) -> "OcrEngine":
        """Load every worker's models now, and return once all are loaded (the backend and Ray's
        actors, before they serve). Without it, pipelines load on first use, one at a time, as
        calls at once need them: a cache hit needs none, and the first page of `svtr-label predict`
        starts after one load while its second job loads the next pipeline."""
        self._pool.fill()
        return self

    @property
    def loaded(self) -> bool:
        """Every worker's pipeline is loaded."""
        return self._pool.ready >= self._pool.size

    @property
    def workers(self) -> int:
        """Pipelines this engine runs at once: callers feeding it from threads should use as many."""
        return self._pool.size

    # -- whole pages ---------------------------------------------------------------------------

    def predict(self, images: Sequence[ImageInput]) -> list[Page]:
        """Detect and recognize every line of each image; one Page per image, in order."""
        decoded = [as_decoded(im) for im in images]
        if len(decoded) <= 1 or self._pool.size == 1:
            return [self._predict_one_decoded(d) for d in decoded]
        return list(self._spread.map(self._predict_one_decoded, decoded))

    def _predict_one_decoded(self, image: DecodedImage) -> Page:
        fitted = sizing.fit_small_image(image.bgr) if self.profile.adaptive_sizing else sizing.Fitted(image.bgr)
        with self._pool.borrow() as ocr:
            reading = self._read(ocr, fitted.bgr)
        return self._to_page(image, fitted, reading)

    def _read(self, ocr: Any, bgr: np.ndarray) -> sizing.Reading:
        """The pipeline's reading of a page. With adaptive sizing (ocr/sizing.py), a page of large
        text is first read from a smaller detector input, kept if its lines were seen tall enough;
        otherwise the normal sizing runs, and a second sizing is tried for pages of very large or
        small text, the better reading kept."""
        max_side = self.profile.det_max_side_limit or sizing.MAX_DET_SIDE
        if self.profile.adaptive_sizing:
            reduced = sizing.large_text_sizing(bgr, max_side)
            if reduced is not None:
                (result,) = ocr.predict(bgr, **reduced.kwargs)
                reading = sizing.Reading.of(result)
                if reduced.holds(reading):
                    return reading
                log.debug("large-text sizing (%d px) did not hold; normal sizing", reduced.long_side)
        (result,) = ocr.predict(bgr)
        first = sizing.Reading.of(result)
        if not self.profile.adaptive_sizing or _doc_rotation(result):
            return first
        again = sizing.second_pass(first, bgr.shape[1], bgr.shape[0], max_side)
        if again is None:
            return first
        (result,) = ocr.predict(bgr, **again)
        return sizing.better(first, sizing.Reading.of(result))

    def predict_one(self, image: ImageInput) -> Page:
        return self.predict([image])[0]

    def _to_page(self, image: DecodedImage, fitted: sizing.Fitted, reading: sizing.Reading) -> Page:
        polys = [as_points(p) for p in reading.polys]
        angle = _doc_rotation(reading.result)
        height, width = fitted.bgr.shape[:2]
        if angle:
            polys = [_unrotate(p, angle, width, height) for p in polys]
        polys = [fitted.to_original(p, image.width, image.height) for p in polys]
        return Page(
            width=image.width,
            height=image.height,
            sha256=image.sha256,
            regions=regions_from_lines(image.sha256, polys, reading.texts, reading.scores),
            model_version=self.model_version,
            source=image.name,
        )

    # -- given regions -------------------------------------------------------------------------

    def recognize(self, image: ImageInput, regions: Sequence[Sequence[Sequence[float]]]) -> list[Recognition]:
        """Text inside each region (a quad, or any polygon: its minimum-area rectangle is read)."""
        decoded = as_decoded(image)
        if not regions:
            return []
        quads = [np.asarray(bounding_quad(r), dtype=np.float32) for r in regions]
        with self._pool.borrow() as ocr:
            inner = _internal_pipeline(ocr)
            crops = inner._crop_by_polys(decoded.bgr, quads)
            usable = [i for i, c in enumerate(crops) if c.size > 0 and c.shape[0] > 0 and c.shape[1] > 0]
            crops = [crops[i] for i in usable]
            if crops and self.profile.use_textline_orientation:
                angles = [int(np.asarray(r["class_ids"]).ravel()[0]) for r in inner.textline_orientation_model(crops)]
                crops = inner.rotate_image(crops, angles)
            outputs = list(inner.text_rec_model(crops)) if crops else []
        found = {i: Recognition(str(o["rec_text"]), float(o["rec_score"])) for i, o in zip(usable, outputs)}
        return [found.get(i, Recognition("", 0.0)) for i in range(len(regions))]

    def describe(self) -> dict[str, Any]:
        return {
            **self.profile.describe(),
            "model_version": self.model_version,
            "workers": self.workers,
            "threads_per_worker": self.settings.cpu_threads,
            "rec_batch_size": self.settings.rec_batch_size,
        }


# --- building --------------------------------------------------------------------------------


def _refuse_unmappable_stages(profile: Profile) -> None:
    """Labels belong on the image Label Studio shows. Document unwarping re-samples the page and
    PaddleX returns no mapping back to the original pixels, so its boxes would land in the wrong
    places without any error: the engine refuses it, and `svtr-label predict` unwarps pages into
    images of their own first (ocr/rectify.py). (Document orientation is mapped back: see _unrotate.)"""
    if profile.use_doc_unwarping:
        raise ModelError(
            "document unwarping (SVTR_USE_DOC_UNWARPING) cannot be done here: its boxes are on a re-sampled page that "
            "PaddleX cannot map back onto the original image, so they would not sit on the text Label Studio shows. "
            "Use `svtr-label predict`, which writes each unwarped page as the task's image, or unset it here; "
            "SVTR_USE_DOC_ORIENTATION (whole-page rotation) works everywhere."
        )


def _named(profile: Profile) -> Profile:
    """Fill model names from local folders (and check the folders) before PaddleOCR sees them."""

    def fill(spec: ModelSpec | None) -> ModelSpec | None:
        if spec is None or spec.dir is None:
            return spec
        name = model_name_of(spec.dir, spec.role)
        if spec.name and spec.name != name:
            log.info("%s folder %s holds %s (profile default was %s)", spec.role, spec.dir, name, spec.name)
        return ModelSpec(spec.role, name, spec.dir)

    textline = fill(profile.textline) if profile.use_textline_orientation else profile.textline
    return profile.with_(det=fill(profile.det), rec=fill(profile.rec), textline=textline)


def _pipeline_kwargs(profile: Profile, settings: EngineSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "text_detection_model_name": profile.det.name,
        "text_detection_model_dir": str(profile.det.dir) if profile.det.dir else None,
        "text_recognition_model_name": profile.rec.name,
        "text_recognition_model_dir": str(profile.rec.dir) if profile.rec.dir else None,
        "use_doc_orientation_classify": profile.use_doc_orientation_classify,
        "use_doc_unwarping": profile.use_doc_unwarping,
        "use_textline_orientation": profile.use_textline_orientation,
        "text_recognition_batch_size": settings.rec_batch_size,
        "text_det_limit_side_len": profile.det_limit_side_len,
        "text_det_limit_type": profile.det_limit_type,
        # A labeling tool shows every line it found; low scores are what reviewers look at.
        "text_rec_score_thresh": 0.0,
        "device": settings.device,
    }
    if profile.use_textline_orientation and profile.textline is not None:
        kwargs["textline_orientation_model_name"] = profile.textline.name
        kwargs["textline_orientation_model_dir"] = str(profile.textline.dir) if profile.textline.dir else None
    if profile.engine:
        kwargs["engine"] = profile.engine
    if profile.engine == "onnxruntime":
        # No memory arena (as RapidOCR configures these models): the arena keeps the detector's peak for
        # the largest page seen, 2.6 GB in a server after eight 59 MP pages; without it, memory goes back.
        ort: dict[str, Any] = {"enable_cpu_mem_arena": False}
        if settings.cpu_threads:
            ort["intra_op_num_threads"] = settings.cpu_threads
        kwargs["engine_config"] = {"onnxruntime": ort}
    else:
        if settings.cpu_threads:
            kwargs["cpu_threads"] = settings.cpu_threads
        mkldnn = settings.enable_mkldnn
        if mkldnn is None and _has_legacy_program(profile):
            # Paddle 3 runs inference.pdmodel through its new executor, whose oneDNN kernels reject
            # ops of some legacy programs (PP-OCRv4 det: ConvertPirAttribute2RuntimeAttribute).
            log.info("legacy inference.pdmodel program: running without oneDNN (SVTR_ENABLE_MKLDNN=true to force it)")
            mkldnn = False
        if mkldnn is not None:
            kwargs["enable_mkldnn"] = mkldnn
    return {k: v for k, v in kwargs.items() if v is not None}


def _has_legacy_program(profile: Profile) -> bool:
    """A model folder exported before PaddlePaddle 3 (inference.pdmodel, no inference.json)."""
    textline = profile.textline if profile.use_textline_orientation else None
    folders = [m.dir for m in (profile.det, profile.rec, textline) if m is not None and m.dir is not None]
    return any((f / "inference.pdmodel").is_file() and not (f / "inference.json").is_file() for f in folders)


def _build_pipeline(profile: Profile, settings: EngineSettings) -> Any:
    quiet_third_parties()
    try:
        from paddleocr import PaddleOCR
    except ImportError as exc:
        raise ModelError(f"PaddleOCR is not installed ({exc}): pip install paddleocr paddlepaddle") from None
    if profile.engine == "onnxruntime":
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise ModelError(f"profile {profile.name!r} runs on ONNX Runtime: pip install onnxruntime") from None
    kwargs = _pipeline_kwargs(profile, settings)
    log.info("loading OCR pipeline: %s", profile.describe())
    try:
        ocr = PaddleOCR(**kwargs)
    except Exception as exc:  # PaddleX raises bare Exceptions for download and config failures
        raise ModelError(_load_failure_hint(profile, exc)) from exc
    if profile.det_max_side_limit:
        set_det_max_side_limit(ocr, profile.det_max_side_limit)
    return ocr


def set_det_max_side_limit(ocr: Any, limit: int) -> None:
    """Cap the detector's input size. PaddleOCR's constructor has no argument for the setting that
    PaddleX's pipeline reads (`text_det_max_side_limit`), so it is set on the pipeline object."""
    inner = _internal_pipeline(ocr)
    if not hasattr(inner, "text_det_max_side_limit"):
        raise ModelError("this PaddleX version has no text_det_max_side_limit; unset SVTR_DET_MAX_SIDE")
    inner.text_det_max_side_limit = int(limit)
    # PaddleX warns on every image it scales down to the cap: that is the setting working, not news.
    logging.getLogger("paddlex").addFilter(_drop_max_side_warnings)


def _drop_max_side_warnings(record: logging.LogRecord) -> bool:
    return "exceeds max_side_limit" not in record.getMessage()


def _load_failure_hint(profile: Profile, exc: Exception) -> str:
    textline = profile.textline if profile.use_textline_orientation else None
    missing = [m for m in (profile.det, profile.rec, textline) if m is not None and m.dir is None]
    msg = f"could not load the {profile.name!r} OCR pipeline: {type(exc).__name__}: {exc}"
    if missing:
        names = ", ".join(str(m.name) for m in missing)
        variables = ", ".join(f"SVTR_{m.role.upper()}_MODEL_DIR" for m in missing)
        msg += (
            f"\nPaddleOCR downloads {names} on first use; this machine could not."
            f" Point {variables} at local PaddleX model folders (inference.yml + weights)"
            + (" or set SVTR_USE_TEXTLINE_ORIENTATION=false" if textline in missing else "")
            + ", or run with --profile bundled to use the offline models."
        )
    return msg


def _internal_pipeline(ocr: Any) -> Any:
    """PaddleX's pipeline object, whose crop and recognizer `recognize` reuses."""
    inner = getattr(getattr(ocr, "paddlex_pipeline", None), "_pipeline", None)
    for attr in ("_crop_by_polys", "text_rec_model", "rotate_image"):
        if not hasattr(inner, attr):
            raise ModelError(f"this PaddleX version has no pipeline.{attr}; svtr-label supports paddlex 3.x")
    return inner


def _official_model_dir(name: str | None, paddlex_home: Path | None) -> Path | None:
    if not name or paddlex_home is None:
        return None
    base = paddlex_home / "official_models" / name
    return base if base.is_dir() else None


def _model_version(profile: Profile, paddlex_home: Path | None) -> str:
    """`det+rec@hash`: Label Studio skips tasks that already hold this version, so it names the weights."""
    folders = [m.dir or _official_model_dir(m.name, paddlex_home) for m in (profile.det, profile.rec)]
    digest = weights_digest([f for f in folders if f is not None])
    return f"{profile.det.name}+{profile.rec.name}@{digest}"


def _doc_rotation(result: Any) -> int:
    doc = result.get("doc_preprocessor_res") if hasattr(result, "get") else None
    try:
        return int(doc["angle"]) if doc is not None and doc.get("angle", -1) not in (-1, None) else 0
    except (KeyError, TypeError, ValueError):
        return 0


def _unrotate(points: Sequence[Point], angle: int, width: int, height: int) -> list[Point]:
    """Map points found on the pipeline's upright copy back onto the original image.

    PaddleX rotates a page counter-clockwise by `angle` degrees to make it upright.
    """
    out = []
    for x, y in points:
        if angle == 90:  # upright is W' = height wide
            out.append((width - y, x))
        elif angle == 180:
            out.append((width - x, height - y))
        elif angle == 270:
            out.append((y, height - x))
        else:
            out.append((x, y))
    return out
