"""The engine's pipeline pool: built on demand, never more than its size, a failed build frees its slot."""

import os
import threading
import time
from pathlib import Path

import pytest

from svtr_label.ocr.engine import _PipelinePool, resolve_engine_settings
from svtr_label.settings import EngineSettings
from conftest import profile_from  # noqa: E402


def test_pool_builds_on_demand_up_to_its_size_and_reuses():
    built = []
    pool = _PipelinePool(lambda: built.append(object()) or built[-1], size=2)
    with pool.borrow() as a:
        with pool.borrow() as b:
            assert a is not b
    with pool.borrow() as c:
        assert c in (a, b)
    assert len(built) == 2 and pool.created == 2


def test_third_borrower_waits_for_a_free_pipeline():
    pool = _PipelinePool(object, size=1)
    order = []

    def user(name):
        with pool.borrow():
            order.append(f"{name} in")
            time.sleep(0.05)
            order.append(f"{name} out")

    threads = [threading.Thread(target=user, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])


def test_failed_build_frees_its_slot():
    calls = []

    def build():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("model folder vanished")
        return object()

    pool = _PipelinePool(build, size=1)
    with pytest.raises(RuntimeError):
        with pool.borrow():
            pass
    with pool.borrow() as p:
        assert p is not None
    assert pool.created == 1


def test_settings_resolve_threads_per_worker():
    s = resolve_engine_settings(EngineSettings(workers=2, cpu_threads=None))
    assert s.workers == 2 and s.cpu_threads >= 1
    assert resolve_engine_settings(EngineSettings(device="gpu:0"), "onnxruntime").workers == 1
    cores = os.cpu_count() or 1
    ort = resolve_engine_settings(EngineSettings(), "onnxruntime")
    assert (ort.workers, ort.cpu_threads) == (min(cores, 4), max(1, cores // min(cores, 4)))
    paddle = resolve_engine_settings(EngineSettings(), "paddle")
    assert (paddle.workers, paddle.cpu_threads) == (1, cores)  # Paddle's own threads beat a pipeline per core
    assert EngineSettings.from_env({"SVTR_WORKERS": "3", "SVTR_CPU_THREADS": "1"}) == EngineSettings(workers=3, cpu_threads=1)


def test_recognition_batch_defaults_to_one_line_for_onnxruntime_on_cpu_and_six_elsewhere():
    assert resolve_engine_settings(EngineSettings(), "onnxruntime").rec_batch_size == 1
    assert resolve_engine_settings(EngineSettings(), "paddle").rec_batch_size == 6
    assert resolve_engine_settings(EngineSettings(), None).rec_batch_size == 6  # PaddleOCR picks Paddle
    assert resolve_engine_settings(EngineSettings(device="gpu:0"), "onnxruntime").rec_batch_size == 6
    assert resolve_engine_settings(EngineSettings.from_env({"SVTR_REC_BATCH_SIZE": "8"}), "onnxruntime").rec_batch_size == 8


@pytest.mark.parametrize("angle", [90, 180, 270])
def test_boxes_found_on_the_upright_copy_map_back_onto_the_original(angle):
    """With document orientation on, PaddleX rotates the page (its own rotate_image) before
    detection; the engine maps the boxes back onto the image the user labels."""
    import numpy as np
    from paddlex.inference.pipelines.components import rotate_image

    from svtr_label.ocr.engine import _unrotate

    h, w = 60, 100
    original = np.zeros((h, w), dtype=np.uint8)
    original[10:14, 70:74] = 255  # a mark around (71.5, 11.5)
    upright = rotate_image(original, angle)
    ys, xs = np.nonzero(upright > 127)
    (x, y), = _unrotate([(xs.mean(), ys.mean())], angle, w, h)
    assert abs(x - 71.5) < 1.5 and abs(y - 11.5) < 1.5


def test_document_unwarping_is_refused_because_its_boxes_cannot_be_placed_on_the_original():
    from svtr_label.ocr.engine import OcrEngine
    from svtr_label.errors import ModelError

    profile = profile_from("bundled", {"SVTR_USE_DOC_UNWARPING": "true"})
    with pytest.raises(ModelError, match="SVTR_USE_DOC_UNWARPING"):
        OcrEngine(profile)


@pytest.mark.pipeline
@pytest.mark.parametrize("threads", [1, 2])
def test_an_engine_loaded_before_a_fork_reads_in_the_children(services, threads):
    """gunicorn --preload loads the app in its master and forks the workers: the bundled ONNX Runtime sessions
    built and used before the fork (with and without their own thread pool) must read the same in
    every child, without hanging."""
    from conftest import texts_in_forked_children

    engine = services.engine("bundled", EngineSettings(workers=1, cpu_threads=threads)).load()
    page = Path(__file__).resolve().parents[1] / "samples" / "en.jpg"
    expected = [r.text for r in engine.predict_one(page).regions]
    assert len(expected) >= 5
    assert texts_in_forked_children(engine, page) == [expected, expected]
