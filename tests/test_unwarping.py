"""Document unwarping in `svtr-label predict`: the flat page becomes the task's image, boxes on it.

PaddleOCR's unwarping model (UVDoc) is downloaded from model hubs this machine cannot reach, and no
PyPI package ships it. So the pipeline test stands in a rectifier that undoes a warp we know (a
perspective transform applied to a generated page): everything around the model is real (the
rectified PNG written beside the output, the bundled OCR pipeline reading it, the tasks). The model
loading path is tested for its error with a folder that holds no model.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from svtr_label.cli.main import main
from svtr_label.core.geometry import quad_iou
from svtr_label.core.synth import make_page
from svtr_label.labelstudio.format import results_to_regions

pytestmark = pytest.mark.pipeline

# Where the page's corners go: a page photographed from below and to the left.
_CORNERS_TO = np.float32([[60, 40], [980, 90], [1010, 1010], [20, 930]])


def _warp(page_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = page_bgr.shape[:2]
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    matrix = cv2.getPerspectiveTransform(corners, _CORNERS_TO)
    warped = cv2.warpPerspective(page_bgr, matrix, (1060, 1060), borderValue=(200, 200, 200))
    return warped, matrix


@pytest.fixture()
def warped_page(tmp_path):
    page = make_page(4242, n_lines=6)
    bgr = np.ascontiguousarray(np.asarray(page.image.convert("RGB"))[:, :, ::-1])
    warped, matrix = _warp(bgr)
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "photo.png"), warped)
    return folder / "photo.png", page, matrix, bgr.shape[:2]


def test_unwarped_page_is_the_task_image_with_the_boxes_on_it(warped_page, tmp_path, monkeypatch):
    photo, page, matrix, (h, w) = warped_page
    calls = []

    def stand_in_unwarper(profile, settings, model_dir):
        def unwarp(bgr):
            calls.append(bgr.shape)
            return cv2.warpPerspective(bgr, np.linalg.inv(matrix), (w, h))
        return unwarp

    monkeypatch.setattr("svtr_label.cli.predict.load_unwarper", stand_in_unwarper)
    monkeypatch.setenv("SVTR_USE_DOC_UNWARPING", "true")
    monkeypatch.setenv("SVTR_PREDICTION_CACHE", "off")
    broken = photo.parent / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    out = tmp_path / "out" / "tasks.json"
    args = ["predict", str(photo), str(broken), "--profile", "bundled", "--root", str(tmp_path), "-o", str(out), "--no-progress"]
    assert main(args) == 0
    (task,) = json.loads(out.read_text(encoding="utf-8"))

    flat = task["data"]["image"].split("?d=")[1]
    assert flat.startswith("out/pages/rectified/photo-") and (tmp_path / flat).is_file()
    assert task["data"]["original_image"] == "/data/local-files/?d=photos/photo.png"
    assert cv2.imread(str(tmp_path / flat)).shape[:2] == (h, w)

    regions = results_to_regions(task["predictions"][0]["result"])
    right = 0
    for line in page.lines:
        best = max(regions, key=lambda r: quad_iou(r.points, line.quad))
        assert quad_iou(best.points, line.quad) > 0.5, line.text  # the box sits on the flat page's text
        right += best.text == line.text
    assert right >= len(page.lines) - 1

    mtime = (tmp_path / flat).stat().st_mtime_ns
    assert main(args) == 0 and len(calls) == 1  # the rerun reuses the flat page
    assert (tmp_path / flat).stat().st_mtime_ns == mtime


def test_unwarping_model_that_cannot_load_names_the_folder(warped_page, tmp_path, monkeypatch, capsys):
    photo, *_ = warped_page
    empty = tmp_path / "uvdoc"
    empty.mkdir()
    monkeypatch.setenv("SVTR_USE_DOC_UNWARPING", "true")
    monkeypatch.setenv("SVTR_UNWARPING_MODEL_DIR", str(empty))
    out = tmp_path / "out" / "tasks.json"
    code = main(["predict", str(photo), "--profile", "bundled", "--root", str(tmp_path), "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0 and not out.exists()
    assert "UVDoc" in err and str(empty) in err and "SVTR_UNWARPING_MODEL_DIR" in err


def test_the_backend_engine_still_refuses_unwarping(services):
    from dataclasses import replace

    from svtr_label.errors import ModelError

    with pytest.raises(ModelError, match="svtr-label predict"):
        services.engine(replace(services.settings.models, profile="bundled", use_doc_unwarping=True))
