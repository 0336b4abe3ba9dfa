"""The engine's pipeline pool: built on demand, never more than its size, a failed build frees its slot."""

import os
import queue
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from svtr_label.errors import ModelError
from svtr_label.ocr.engine import OcrEngine, resolve_engine_settings
from svtr_label.ocr.pool import PipelinePool
from svtr_label.settings import EngineSettings
from conftest import profile_from  # noqa: E402


def test_pool_builds_on_demand_up_to_its_size_and_reuses():
    built = []
    pool = PipelinePool(lambda: built.append(object()) or built[-1], size=2)
    with pool.borrow() as a:
        with pool.borrow() as b:
            assert a is not b
    with pool.borrow() as c:
        assert c in (a, b)
    assert len(built) == 2 and pool.created == 2


def test_third_borrower_waits_for_a_free_pipeline():
    pool = PipelinePool(object, size=1)
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

    pool = PipelinePool(build, size=1)
    with pytest.raises(RuntimeError):
        with pool.borrow():
            pass
    with pool.borrow() as p:
        assert p is not None
    assert pool.created == 1


def test_a_borrower_waiting_on_a_build_that_fails_builds_its_own():
    """Only one build runs at a time: a borrower that waited on a failing build takes the freed
    slot (it used to wait forever for a pipeline that would never come)."""
    first_running, fail_now = threading.Event(), threading.Event()
    calls, errors, got = [], [], []

    def build():
        calls.append(1)
        if len(calls) == 1:
            first_running.set()
            fail_now.wait(30)
            raise RuntimeError("model folder vanished")
        return object()

    def use(into):
        try:
            with pool.borrow() as p:
                into.append(p)
        except RuntimeError as exc:
            errors.append(exc)

    pool = PipelinePool(build, size=1)
    a = threading.Thread(target=use, args=([],))
    a.start()
    assert first_running.wait(30)
    b = threading.Thread(target=use, args=(got,))
    b.start()
    time.sleep(0.2)  # let b reach its wait on the build under way
    fail_now.set()
    a.join(30)
    b.join(30)
    assert len(errors) == 1 and len(got) == 1 and len(calls) == 2 and pool.created == pool.ready == 1


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
    assert len(expected) >= 4  # en.jpg holds 4 lines
    assert texts_in_forked_children(engine, page) == [expected, expected]


# --- start-up: pipelines load one at a time, as calls need them ---------------------------------

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "en.jpg"


class _HeldBuilds:
    """Wraps a pool's real build: counts builds, the most running at once, and holds every build
    after the first until `release` is set."""

    def __init__(self, pool: PipelinePool) -> None:
        self.real, self.release = pool._build, threading.Event()
        self.started, self.running, self.most_at_once = 0, 0, 0
        self.lock = threading.Lock()
        pool._build = self

    def __call__(self):
        with self.lock:
            self.started += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            held = self.started > 1
        try:
            if held:
                assert self.release.wait(600), "the test never released the build"
            return self.real()
        finally:
            with self.lock:
                self.running -= 1


def _texts(page):
    return [r.text for r in page.regions]


@pytest.mark.pipeline
def test_a_two_worker_engine_answers_its_first_page_while_its_second_pipeline_is_loading():
    engine = OcrEngine(profile_from("bundled"), EngineSettings(workers=2, cpu_threads=1))
    builds = _HeldBuilds(engine._pool)
    answers: queue.Queue = queue.Queue()
    callers = [threading.Thread(target=lambda: answers.put(engine.predict_one(SAMPLE))) for _ in range(4)]
    try:
        for c in callers:
            c.start()
        first = answers.get(timeout=600)
        # Answered while the second pipeline was held in its build: one pipeline was enough to start.
        assert engine._pool.ready == 1 and not engine.loaded
        assert builds.started <= 2 and builds.most_at_once == 1
    finally:
        builds.release.set()
        for c in callers:
            c.join(600)
    rest = [answers.get_nowait() for _ in range(3)]
    assert len(_texts(first)) >= 4 and all(_texts(p) == _texts(first) for p in rest)
    # Four callers at once never got more than `size` pipelines, nor two builds at the same time.
    assert engine._pool.created <= 2 and builds.started == engine._pool.created and builds.most_at_once == 1
    engine.load()  # "all loaded": builds what is missing, never more
    assert engine.loaded and engine._pool.ready == builds.started == 2


@pytest.mark.pipeline
def test_a_pipeline_that_cannot_load_raises_model_error_on_the_call_that_needed_it(tmp_path):
    profile = profile_from("bundled")
    rec = tmp_path / profile.rec.dir.name
    shutil.copytree(profile.rec.dir, rec)
    engine = OcrEngine(profile.with_(rec=replace(profile.rec, dir=rec)), EngineSettings(workers=2, cpu_threads=1))
    expected = _texts(engine.predict_one(SAMPLE))  # loads the first pipeline
    (rec / "inference.onnx").unlink()  # the second cannot load
    with engine._pool.borrow():  # the first is busy: the next call needs the second pipeline
        with pytest.raises(ModelError, match="could not load"):
            engine.predict_one(SAMPLE)
    assert engine._pool.created == engine._pool.ready == 1  # the failed build gave its slot back
    assert _texts(engine.predict_one(SAMPLE)) == expected  # the pipeline that loaded still reads
    with pytest.raises(ModelError, match="could not load"):
        engine.load()
    assert not engine.loaded


def test_a_job_of_fewer_pages_than_pipelines_gives_each_page_more_cores(monkeypatch):
    """`svtr-label predict` on one page runs one pipeline on every core, not one of two on one core."""
    from svtr_label.cli.predict import engine_for_pages
    from svtr_label.ocr.engine import resolve_engine_settings
    from svtr_label.settings import EngineSettings

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    one = resolve_engine_settings(engine_for_pages(1, EngineSettings(), "onnxruntime"), "onnxruntime")
    assert (one.workers, one.cpu_threads) == (1, 2)
    many = resolve_engine_settings(engine_for_pages(16, EngineSettings(), "onnxruntime"), "onnxruntime")
    assert (many.workers, many.cpu_threads) == (2, 1)
    assert engine_for_pages(1, EngineSettings(workers=2), "onnxruntime").workers == 2  # the user's choice stands
    assert engine_for_pages(1, EngineSettings(cpu_threads=1), "onnxruntime").workers is None
