"""The real PaddleOCR pipeline on the bundled PP-OCRv6 small weights (ONNX Runtime)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from svtr_label.core.geometry import quad_iou
from svtr_label.labelstudio.format import recommended_config, results_to_regions
from conftest import profile_from, models_dir  # noqa: E402

pytestmark = pytest.mark.pipeline

# Measured on the generated set (12 pages, 96 lines, seed 1000): recall 1.000, exact lines 1.000 (PP-OCRv6
# small; PP-OCRv5 mobile: 0.990, 0.979).
MIN_RECALL = 0.93
MIN_LINE_ACCURACY = 0.90


def texts(page):
    return [r.text for r in page.regions]


def test_real_product_label_photo(engine, real_images):
    page = engine.predict_one(real_images / "ch_en_num.jpg")
    assert 17 <= len(page.regions) <= 18
    assert page.regions[0].text == "正品促销"
    assert all(0 <= r.score <= 1 for r in page.regions)


def test_real_images_that_direct_calls_get_wrong_or_right(engine, real_images):
    assert texts(engine.predict_one(real_images / "img_exif_orientation.jpg"))[0] == "我是中国人"
    # A direct PaddleOCR call finds nothing here: the transparent background is not composited.
    assert texts(engine.predict_one(real_images / "black_font_color_transparent.png"))[0] == "我是中国人"
    assert texts(engine.predict_one(real_images / "empty_black.jpg")) == []
    assert any("MovieShots Dataset" in t for t in texts(engine.predict_one(real_images / "en.jpg")))
    assert len(engine.predict_one(real_images / "short.png").regions) == 1


def test_recognize_a_given_region(engine, real_images):
    from svtr_label.core.images import read_image

    img = read_image(real_images / "text_rec.jpg")
    whole = [(0, 0), (img.width, 0), (img.width, img.height), (0, img.height)]
    (rec,) = engine.recognize(img, [whole])
    assert rec.text == "韩国小馆" and rec.score > 0.5


def test_recognize_reads_what_predict_read(engine, synth_set, synth_predictions):
    folder, pages = synth_set
    page = synth_predictions[0]
    again = engine.recognize(folder / pages[0].name, [r.points for r in page.regions])
    assert [r.text for r in again] == texts(page)


def test_one_box_re_recognized_alone_keeps_its_text_and_score(engine, synth_set, synth_predictions):
    """A reviewer re-reading one untouched line must not see its score move: the page's result
    may not depend on which neighbours shared its recognition batch."""
    folder, pages = synth_set
    for name, page in list(zip((p.name for p in pages), synth_predictions))[:3]:
        for region in page.regions:
            (alone,) = engine.recognize(folder / name, [region.points])
            assert alone.text == region.text
            assert alone.score == pytest.approx(region.score, abs=1e-4)


def test_page_metadata(engine, real_images):
    page = engine.predict_one(real_images / "img_exif_orientation.jpg")
    assert (page.width, page.height) == (752, 306)
    assert len(page.sha256) == 64
    assert page.model_version.startswith("PP-OCRv6_small_det+PP-OCRv6_small_rec@")
    assert len({r.id for r in page.regions}) == len(page.regions)
    for r in page.regions:
        xs = [p[0] for p in r.points]
        ys = [p[1] for p in r.points]
        assert r.points[0][0] <= min(xs) + 2 and r.points[0][1] <= min(ys) + 4  # starts top-left


def match_truth(truth_lines, page):
    """One-to-one: each truth line takes its best-overlapping unused prediction (IoU > 0.5)."""
    used, found, exact = set(), 0, 0
    for line in truth_lines:
        best = max(
            (r for r in page.regions if r.id not in used), key=lambda r: quad_iou(r.points, line.quad), default=None
        )
        if best is not None and quad_iou(best.points, line.quad) > 0.5:
            used.add(best.id)
            found += 1
            exact += best.text == line.text
    return found, exact


def test_detection_recall_and_line_accuracy_on_generated_pages(synth_set, synth_predictions):
    _, pages = synth_set
    total = found = exact = 0
    for truth, page in zip(pages, synth_predictions):
        f, e = match_truth(truth.lines, page)
        total += len(truth.lines)
        found += f
        exact += e
    recall, accuracy = found / total, exact / total
    print(f"generated set: {total} lines, recall {recall:.3f}, exact-line accuracy {accuracy:.3f}")
    assert recall >= MIN_RECALL
    assert accuracy >= MIN_LINE_ACCURACY


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "svtr_label.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_cli_predict_reproduces_a_direct_paddleocr_call(synth_set, tmp_path):
    """Same texts, boxes within 1 px, as PaddleOCR.predict on the same files with the same models."""
    from paddleocr import PaddleOCR

    from svtr_label.ocr.engine import set_det_max_side_limit

    from svtr_label.ocr.profiles import bundled_model_dirs

    folder, pages = synth_set
    out = tmp_path / "tasks.json"
    res = run_cli("predict", folder, "--profile", "bundled", "--root", folder, "-o", out, "--no-progress", "--no-cache")
    assert res.returncode == 0, res.stderr
    tasks = json.loads(out.read_text(encoding="utf-8"))
    assert len(tasks) == len(pages)

    det, rec = bundled_model_dirs(models_dir())
    direct = PaddleOCR(
        text_detection_model_name="PP-OCRv6_small_det", text_detection_model_dir=str(det),
        text_recognition_model_name="PP-OCRv6_small_rec", text_recognition_model_dir=str(rec),
        use_doc_orientation_classify=False, use_doc_unwarping=False, use_textline_orientation=False,
        text_rec_score_thresh=0.0, engine="onnxruntime", device="cpu",
        text_recognition_batch_size=1,  # svtr-label's CPU default
    )
    set_det_max_side_limit(direct, 2000)  # the bundled profile's one setting PaddleOCR's constructor lacks
    # The generated pages' lines are 32 px and taller: adaptive sizing takes one pass, PaddleOCR's own.
    for task in tasks:
        name = task["data"]["image"].split("?d=")[1]
        expected = list(direct.predict(str(folder / name)))[0]
        regions = results_to_regions(task["predictions"][0]["result"])
        assert [r.text for r in regions] == list(expected["rec_texts"])
        for region, poly in zip(regions, expected["rec_polys"]):
            for (x, y), (ex, ey) in zip(region.points, poly.tolist()):
                assert math.dist((x, y), (ex, ey)) <= 1.0


def test_cli_skips_bad_files_caches_and_writes_valid_tasks(real_images, tmp_path):
    from label_studio_sdk.label_interface import LabelInterface

    images = tmp_path / "imgs"
    images.mkdir()
    for name in ("ch_en_num.jpg", "short.png"):
        (images / name).write_bytes((real_images / name).read_bytes())
    (images / "notes.jpg").write_text("not an image")
    out = tmp_path / "tasks.json"
    first = run_cli("predict", images, "--profile", "bundled", "--root", tmp_path, "-o", out, "--no-progress")
    assert first.returncode == 0, first.stderr
    assert "notes.jpg" in first.stderr and "not an image" in first.stderr
    assert "2 images" in first.stdout and "1 skipped" in first.stdout
    first_bytes = out.read_bytes()
    tasks = json.loads(first_bytes)
    assert [t["data"]["image"] for t in tasks] == ["/data/local-files/?d=imgs/ch_en_num.jpg", "/data/local-files/?d=imgs/short.png"]
    li = LabelInterface(recommended_config())
    for t in tasks:
        assert li.validate_prediction(t["predictions"][0], return_errors=True) == []

    second = run_cli("predict", images, "--profile", "bundled", "--root", tmp_path, "-o", out, "--no-progress")
    assert "(2 from cache)" in second.stdout
    assert out.read_bytes() == first_bytes


def test_cli_fails_only_when_nothing_could_be_processed(tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG broken")
    res = run_cli("predict", tmp_path, "--profile", "bundled", "--root", tmp_path, "-o", tmp_path / "t.json", "--no-progress")
    assert res.returncode == 1
    assert "none of the 1 inputs could be processed" in res.stderr
    assert not (tmp_path / "t.json").exists()


def test_svtrv2_profile_loads_local_model_folders(tmp_path, real_images):
    """The air-gapped path of the default profile: the same code that loads SVTRv2 from folders."""
    from svtr_label.ocr.engine import OcrEngine
    from svtr_label.ocr.profiles import bundled_model_dirs

    det, rec = bundled_model_dirs(models_dir())
    env = {"SVTR_DET_MODEL_DIR": str(det), "SVTR_REC_MODEL_DIR": str(rec), "SVTR_ENGINE": "onnxruntime",
           "SVTR_USE_TEXTLINE_ORIENTATION": "false"}
    profile = profile_from("svtrv2", env)
    engine = OcrEngine(profile)
    assert engine.profile.rec.name == "PP-OCRv6_small_rec"  # the folder's own model name wins
    assert engine.predict_one(real_images / "ch_en_num.jpg").regions[0].text == "正品促销"


def test_threads_sharing_one_engine_get_the_sequential_results(engine, synth_set, synth_predictions):
    from concurrent.futures import ThreadPoolExecutor

    folder, pages = synth_set
    paths = [folder / p.name for p in pages[:6]]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(engine.predict_one, paths))
    assert [p.to_dict() for p in concurrent] == [p.with_(source=str(path)).to_dict() for p, path in zip(synth_predictions[:6], paths)]
    assert engine.describe()["workers"] >= 1


def test_annotate_files_keeps_input_order_and_fails_only_bad_files(engine, synth_set, synth_predictions, tmp_path):
    from svtr_label.ocr.annotate import annotate_files

    folder, pages = synth_set
    (tmp_path / "bad.png").write_bytes(b"\x89PNG truncated")
    paths = [folder / pages[0].name, tmp_path / "bad.png", folder / pages[1].name, tmp_path / "gone.png", folder / pages[2].name]
    outcomes = list(annotate_files(paths, engine))
    assert [o.name for o in outcomes] == [str(p) for p in paths]
    assert [o.page is None for o in outcomes] == [False, True, False, True, False]
    assert "bad.png" in outcomes[1].error and "gone.png" in outcomes[3].error
    assert [texts(o.page) for o in outcomes if o.page] == [texts(p) for p in synth_predictions[:3]]


def test_annotate_files_reads_ahead_only_a_few_files(engine, synth_set):
    """A folder of 10,000 scans must not be read into memory before the first page comes back."""
    from svtr_label.ocr.annotate import annotate_files

    folder, pages = synth_set
    taken = []

    def paths():
        for p in pages:
            taken.append(p.name)
            yield folder / p.name

    first = next(annotate_files(paths(), engine))
    assert first.page is not None
    assert len(taken) <= 2 * engine.workers < len(pages)
