"""Document unwarping (the seed pipeline's second module), made usable for labeling.

UVDoc re-samples a photographed, curved page onto a flat one, and PaddleX gives no way back from
the flat page to the original pixels. So the boxes are kept on the flat page, and the flat page
becomes the image the task points at: `svtr-label predict` writes each rectified page as a PNG
beside its output (named from the source's content hash, so a rerun reuses it and its cached
predictions) and predicts that, with the original's reference kept in the task's data.

The ML backend cannot replace the image of a task Label Studio already holds, so it still refuses
unwarping (ocr.engine), naming this command.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from svtr_label.core.images import read_image
from svtr_label.errors import ImageError, ModelError
from svtr_label.ocr.profiles import Profile
from svtr_label.settings import EngineSettings, quiet_third_parties

log = logging.getLogger(__name__)

UNWARPING_MODEL = "UVDoc"

Unwarp = Callable[[np.ndarray], np.ndarray]  # BGR page in, flat BGR page out


def load_unwarper(profile: Profile, settings: EngineSettings, model_dir: Path | None) -> Unwarp:
    """PaddleOCR's document preprocessor (orientation, when the profile asks for it, then UVDoc),
    as a function of a BGR page."""
    quiet_third_parties()
    try:
        from paddleocr import DocPreprocessor
    except ImportError as exc:
        raise ModelError(f"PaddleOCR is not installed ({exc}): pip install paddleocr paddlepaddle") from None
    kwargs: dict[str, Any] = {
        "use_doc_orientation_classify": profile.use_doc_orientation_classify,
        "use_doc_unwarping": True,
        "doc_unwarping_model_name": UNWARPING_MODEL,
        "device": settings.device,
    }
    if model_dir is not None:
        kwargs["doc_unwarping_model_dir"] = str(model_dir)
    try:
        pipeline = DocPreprocessor(**kwargs)
    except Exception as exc:  # PaddleX raises bare Exceptions for download and config failures
        where = f"the folder {model_dir}" if model_dir else "PaddleOCR's download"
        raise ModelError(
            f"could not load the document unwarping model {UNWARPING_MODEL} from {where}: {type(exc).__name__}: {exc}\n"
            "Point SVTR_UNWARPING_MODEL_DIR at a local PaddleX UVDoc folder, or unset SVTR_USE_DOC_UNWARPING."
        ) from exc

    def unwarp(bgr: np.ndarray) -> np.ndarray:
        (result,) = pipeline.predict(bgr)
        return np.ascontiguousarray(result["output_img"])

    return unwarp


@dataclass(frozen=True)
class RectifiedPage:
    source: Path
    path: Path  # the flat page's PNG: the image the task points at


class Rectifier:
    """Writes the flat page of each input image beside the output; the model loads on first need."""

    def __init__(self, folder: Path, load: Callable[[], Unwarp]) -> None:
        self.folder = folder
        self._load = load
        self._unwarp: Unwarp | None = None
        self._lock = threading.Lock()

    def rectify(self, source: Path) -> RectifiedPage:
        """The flat page of `source` (written once; reused by reruns). Raises ImageError for an
        input that cannot be read, ModelError when the model cannot be loaded."""
        image = read_image(source)
        target = self.folder / f"{source.stem}-{image.sha256[:8]}.png"
        if not target.is_file():
            flat = self._model()(image.bgr)
            _write_png(target, flat, source)
        return RectifiedPage(source, target)

    def _model(self) -> Unwarp:
        with self._lock:
            if self._unwarp is None:
                self._unwarp = self._load()
            return self._unwarp


def _write_png(target: Path, bgr: np.ndarray, source: Path) -> None:
    """Written whole or not at all: a killed run leaves no half image to be reused."""
    ok, encoded = cv2.imencode(".png", bgr)
    if not ok:
        raise ImageError(f"{source}: the unwarped page could not be encoded as PNG")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(encoded.tobytes())
    tmp.replace(target)
