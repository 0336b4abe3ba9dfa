"""Exports on real pipeline pages: each format parsed back and compared with the corrected
pages, PaddleX's own dataset checkers, the split, reruns, invalid samples, a killed export,
and predict -> correct -> export end to end."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest

from svtr_label.cli import main
from svtr_label.ocr.engine import _internal_pipeline
from svtr_label.core.geometry import bounding_quad
from svtr_label.core.page import IGNORE_TEXT
from svtr_label.store import Store
from svtr_label.core.synth import find_font

from test_store import texts

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory, synth_set, synth_predictions):
    """A store of 4 predicted pages: 3 reviewed (a text fixed, a line made '###', one only
    accepted), the 4th left unreviewed."""
    folder, pages = synth_set
    db = tmp_path_factory.mktemp("reviewed") / "store.db"
    store = Store(db)
    ids = [store.add_page(p, str(folder / sp.name)) for p, sp in zip(synth_predictions[:4], pages[:4])]
    p0, p2 = synth_predictions[0], synth_predictions[2]
    store.set_text(ids[0], p0.regions[0].id, "Corrected zero", who="alice")
    store.mark_illegible(ids[0], p0.regions[1].id, who="alice")
    store.set_image_state(ids[1], "reviewed", who="bob")
    store.set_text(ids[2], p2.regions[3].id, "Fixed line 3", who="bob")
    store.set_image_state(ids[2], "reviewed", who="bob")
    store.close()
    return db, ids


@contextmanager
def paddlex_pipeline(engine):
    """The PaddleX pipeline object the engine runs (private to the engine: this test needs the
    pipeline's own crop operator and recognizer, not the engine's wrapping of them)."""
    with engine._pool.borrow() as ocr:
        yield _internal_pipeline(ocr)


def export(*args: str) -> int:
    return main(["export", *map(str, args)])


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def current_pages(db: Path, ids) -> dict[str, object]:
    """Expected content: the store's corrected pages, by image sha256."""
    with Store(db) as store:
        return {store.get_image(i).sha256: store.current_page(i) for i in ids}


def read_list(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split("\t", 1)) for line in path.read_text(encoding="utf-8").split("\n") if line]  # type: ignore[misc]


def sha_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_det_matches(rows: list[tuple[str, str]], root: Path, expected: dict) -> None:
    for rel, label in rows:
        page = expected[sha_of(root / rel)]  # the exported image is the labeled image, byte for byte
        items = json.loads(label)
        assert [i["transcription"] for i in items] == texts(page)
        for item, region in zip(items, page.regions):
            assert np.allclose(item["points"], region.points, atol=0.01)


CHECKER = textwrap.dedent(
    """
    import json, sys
    from paddlex.utils.config import AttrDict
    from paddlex.modules.text_detection.dataset_checker import TextDetDatasetChecker
    from paddlex.modules.text_recognition.dataset_checker import TextRecDatasetChecker
    kind, folder, out = sys.argv[1:]
    model, cls = {"det": ("PP-OCRv5_mobile_det", TextDetDatasetChecker), "rec": ("PP-OCRv5_mobile_rec", TextRecDatasetChecker)}[kind]
    config = AttrDict({"Global": AttrDict({"model": model, "dataset_dir": folder, "output": out}),
                       "CheckDataset": AttrDict({"convert": AttrDict({"enable": False}), "split": AttrDict({"enable": False})})})
    result = cls(config).check()
    print(json.dumps({"check_pass": result["check_pass"], "train": result["attributes"]["train_samples"],
                      "val": result["attributes"]["val_samples"]}))
    """
)


def paddlex_check(kind: str, folder: Path, tmp: Path) -> dict:
    """PaddleX's own dataset checker, run as `paddlex --check_dataset` runs it (check + analyse).
    Its analysis draws a histogram with a CJK font it would download: point it at a local one."""
    env = {**os.environ, "PADDLE_PDX_LOCAL_FONT_FILE_PATH": find_font(), "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True"}
    proc = subprocess.run([sys.executable, "-c", CHECKER, kind, str(folder), str(tmp / f"check_{kind}")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- formats ------------------------------------------------------------------------------------


def test_paddleocr_format_parses_back_with_pipeline_crops(tmp_path, reviewed, engine):
    db, ids = reviewed
    out = tmp_path / "ppocr"
    assert export(db, "--format", "paddleocr", "--out", out, "--profile", "bundled", "--val-fraction", "0.34") == 0
    expected = current_pages(db, ids[:3])  # the unreviewed page is not exported

    det = read_list(out / "Label.txt")
    assert len(det) == 3
    assert_det_matches(det, out, expected)
    assert IGNORE_TEXT in out.joinpath("Label.txt").read_text(encoding="utf-8")  # kept for detection

    rec = read_list(out / "rec_gt.txt")
    want = Counter(t for p in expected.values() for t in texts(p) if t != IGNORE_TEXT)
    assert Counter(t for _, t in rec) == want and "Corrected zero" in want and "Fixed line 3" in want

    # Crops are the pipeline's own: same pixels as its CropByPolys, read back by its recognizer.
    with paddlex_pipeline(engine) as inner:
        page_by_stem = {rel.split("/")[-1].rsplit(".", 1)[0]: expected[sha_of(out / rel)] for rel, _ in det}
        for rel, text in rec[:8]:
            stem, index = rel.split("/")[-1][: -len(".png")].rsplit("_", 1)
            region = page_by_stem[stem].regions[int(index)]
            image = cv2.imread(str(out / [r for r, _ in det if stem in r][0]))
            (want_crop,) = inner._crop_by_polys(image, [np.asarray(bounding_quad(region.points), dtype=np.float32)])
            assert np.array_equal(cv2.imread(str(out / rel)), want_crop)
        crops = [cv2.imread(str(out / rel)) for rel, _ in rec]
        read = [str(r["rec_text"]) for r in inner.text_rec_model(crops)]
        corrected = {"Corrected zero", "Fixed line 3"}
        assert [r for r, (_, t) in zip(read, rec) if t not in corrected] == [t for _, t in rec if t not in corrected]

    # One split by image, the same for det and rec.
    val_images = {rel for rel, _ in read_list(out / "det_gt_val.txt")}
    train_images = {rel for rel, _ in read_list(out / "det_gt_train.txt")}
    assert len(val_images) == 1 and len(train_images) == 2 and not val_images & train_images
    val_stems = {Path(r).stem for r in val_images}
    for rel, _ in read_list(out / "rec_gt_val.txt"):
        assert Path(rel).stem.rsplit("_", 1)[0] in val_stems
    for rel, _ in read_list(out / "rec_gt_train.txt"):
        assert Path(rel).stem.rsplit("_", 1)[0] not in val_stems

    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["files"] == {k: v for k, v in tree(out).items() if k != "manifest.json"}
    assert manifest["counts"]["rec_lines"] == sum(want.values())
    assert manifest["counts"]["rec_skipped_illegible"] == 1 and manifest["counts"]["skipped_uncorrected"] == 1
    assert manifest["reviewers"] == ["alice", "bob"] and manifest["model_versions"] == [engine.model_version]


def test_paddlex_folders_pass_paddlex_checkers(tmp_path, reviewed):
    from svtr_label.ocr.profiles import BUNDLES, bundled_dictionary

    db, ids = reviewed
    det, rec = tmp_path / "det", tmp_path / "rec"
    assert export(db, "--format", "paddlex-det", "--out", det, "--val-fraction", "0.34", "--seed", "3") == 0
    assert export(db, "--format", "paddlex-rec", "--out", rec, "--val-fraction", "0.34", "--seed", "3", "--profile", "bundled") == 0
    expected = current_pages(db, ids[:3])

    assert_det_matches(read_list(det / "train.txt") + read_list(det / "val.txt"), det, expected)
    rec_rows = read_list(rec / "train.txt") + read_list(rec / "val.txt")
    assert Counter(t for _, t in rec_rows) == Counter(t for p in expected.values() for t in texts(p) if t != IGNORE_TEXT)
    # dict.txt is the target model's dictionary file, byte for byte.
    assert (rec / "dict.txt").read_bytes() == "".join(c + "\n" for c in bundled_dictionary(BUNDLES["bundled"])).encode()
    # Same seed, same partition for det and rec.
    det_val = {Path(r).stem for r, _ in read_list(det / "val.txt")}
    assert det_val and {Path(r).stem.rsplit("_", 1)[0] for r, _ in read_list(rec / "val.txt")} == det_val

    assert paddlex_check("det", det, tmp_path) == {"check_pass": True, "train": 2, "val": 1}
    rec_result = paddlex_check("rec", rec, tmp_path)
    assert rec_result["check_pass"] and rec_result["train"] + rec_result["val"] == len(rec_rows)


def test_icdar2015_and_label_studio_parse_back(tmp_path, reviewed):
    db, ids = reviewed
    expected = current_pages(db, ids[:3])
    icdar = tmp_path / "icdar"
    assert export(db, "--format", "icdar2015", "--out", icdar) == 0
    names = (icdar / "train.txt").read_text().split() + (icdar / "val.txt").read_text().split()
    assert len(names) == 3
    for name in names:
        page = expected[sha_of(icdar / "images" / name)]
        rows = (icdar / "gt" / f"gt_{Path(name).stem}.txt").read_text(encoding="utf-8").splitlines()
        assert [r.split(",", 8)[8] for r in rows] == texts(page)
        for row, region in zip(rows, page.regions):
            coords = np.array(row.split(",", 8)[:8], dtype=float).reshape(4, 2)
            assert np.abs(coords - np.array(bounding_quad(region.points))).max() <= 0.5

    ls = tmp_path / "ls"
    assert export(db, "--format", "label-studio", "--out", ls) == 0
    tasks = json.loads((ls / "tasks.json").read_text(encoding="utf-8"))
    assert len(tasks) == 4 and sum(bool(t.get("annotations")) for t in tasks) == 3
    back = Store(tmp_path / "back.db")
    back.import_label_studio_tasks(tasks)
    for sha, page in expected.items():
        assert texts(back.current_page(back.find_image(sha256=sha))) == texts(page)


def test_rerun_gives_identical_bytes(tmp_path, reviewed):
    db, _ = reviewed
    out = tmp_path / "rec"
    args = ("--format", "paddlex-rec", "--out", out, "--profile", "bundled")
    assert export(db, *args) == 0
    first = tree(out)
    assert export(db, *args) == 0  # into the same folder: replaced in one step
    assert tree(out) == first
    other = tmp_path / "again"
    assert export(db, "--format", "paddlex-rec", "--out", other, "--profile", "bundled") == 0
    assert tree(other) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "rec"]  # no temporary folders left
    # The unreviewed page joins only when asked for.
    assert export(db, "--format", "paddlex-det", "--out", tmp_path / "all", "--include-predictions") == 0
    assert len(read_list(tmp_path / "all" / "train.txt") + read_list(tmp_path / "all" / "val.txt")) == 4


# --- invalid samples and errors -----------------------------------------------------------------


@pytest.fixture()
def with_invalid(tmp_path, synth_set, synth_predictions):
    folder, pages = synth_set
    db = tmp_path / "bad.db"
    store = Store(db)
    pred = synth_predictions[0]
    image_id = store.add_page(pred, str(folder / pages[0].name))
    store.set_text(image_id, pred.regions[0].id, "x" * 30, who="alice")  # too long for the model
    store.set_text(image_id, pred.regions[1].id, "tab\there", who="alice")
    store.set_text(image_id, pred.regions[2].id, "emoji 🙂", who="alice")  # outside the dictionary
    store.close()
    return db, pred


def test_invalid_samples_fail_drop_or_report(tmp_path, with_invalid, capsys):
    db, pred = with_invalid
    args = ("--format", "paddlex-rec", "--profile", "bundled", "--val-fraction", "0")
    assert export(db, *args, "--out", tmp_path / "fail") == 1
    err = capsys.readouterr().err
    assert not (tmp_path / "fail").exists()
    assert "3 invalid samples (nothing written)" in err and "too_long" in err and "control_char" in err and "out_of_dict" in err

    assert export(db, *args, "--out", tmp_path / "drop", "--on-invalid", "drop") == 0
    assert "left out" in capsys.readouterr().err
    rows = read_list(tmp_path / "drop" / "train.txt")
    assert [t for _, t in rows] == texts(pred)[3:]
    manifest = json.loads((tmp_path / "drop" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["dropped_rec_lines"] == 3 and len(manifest["issues"]) == 3

    assert export(db, *args, "--out", tmp_path / "report", "--on-invalid", "report") == 3
    assert read_list(tmp_path / "report" / "train.txt") == rows
    # Detection does not read the text: the same pages export for det without complaint.
    assert export(db, "--format", "paddlex-det", "--out", tmp_path / "det") == 0


def test_missing_image_is_named(tmp_path, synth_predictions, capsys):
    db = tmp_path / "s.db"
    with Store(db) as store:
        image_id = store.add_page(synth_predictions[0], "/data/local-files/?d=moved/page.png")
        store.set_image_state(image_id, "reviewed", who="alice")
    assert export(db, "--format", "paddlex-det", "--out", tmp_path / "out", "--root", tmp_path) == 2
    err = capsys.readouterr().err
    assert "/data/local-files/?d=moved/page.png" in err and "not found" in err
    assert not (tmp_path / "out").exists()
    assert export(db, "--format", "paddlex-rec", "--out", tmp_path / "out") == 2
    assert "dictionary" in capsys.readouterr().err


# --- a killed export -----------------------------------------------------------------------------

SLOW_EXPORT = textwrap.dedent(
    """
    import sys, time
    from svtr_label.dataset import samples as core
    write = core.ExportDir.write
    def slow_write(self, rel, data):  # slowed down so the kill lands mid-export
        write(self, rel, data)
        print("wrote", rel, flush=True)
        time.sleep(0.3)
    core.ExportDir.write = slow_write
    from svtr_label.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def kill_export_midway(args: list[str]) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SLOW_EXPORT, "export", *map(str, args)], stdout=subprocess.PIPE, text=True)
    written = 0
    for line in proc.stdout:  # type: ignore[union-attr]
        written += line.startswith("wrote")
        if written == 3:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert written == 3


def test_killed_export_leaves_no_half_written_folder(tmp_path, reviewed, synth_predictions):
    src, ids = reviewed
    db = tmp_path / "store.db"
    db.write_bytes(Path(src).read_bytes())
    out = tmp_path / "out"
    args = [db, "--format", "paddleocr", "--out", out, "--profile", "bundled"]

    kill_export_midway(args)
    assert not out.exists()

    assert export(*args) == 0
    before = tree(out)
    with Store(db) as store:
        store.set_text(ids[1], synth_predictions[1].regions[0].id, "Changed later", who="carol")
    kill_export_midway(args)
    assert tree(out) == before  # the earlier export, untouched
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]  # the dead export's temp folder

    assert export(*args) == 0  # the next export cleans up after the dead one
    assert "Changed later" in (out / "rec_gt.txt").read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "store.db"]


# --- predict -> correct -> export ----------------------------------------------------------------


def test_predict_correct_export_paddlex_rec(tmp_path, synth_set, engine):
    folder, pages = synth_set
    tasks_file = tmp_path / "tasks.json"
    paths = [folder / p.name for p in pages[4:6]]
    assert main(["predict", *map(str, paths), "--profile", "bundled", "--root", str(folder), "-o", str(tasks_file), "--no-progress"]) == 0
    tasks = json.loads(tasks_file.read_text(encoding="utf-8"))

    # A reviewer corrects two lines of each task in Label Studio; the export holds the annotations.
    corrected_texts = []
    for n, task in enumerate(tasks):
        result = json.loads(json.dumps(task["predictions"][0]["result"]))
        textareas = [r for r in result if r["type"] == "textarea"]
        for k in (0, 2):
            textareas[k]["value"]["text"] = [f"Reviewed {n}-{k}"]
        corrected_texts += [r["value"]["text"][0] for r in textareas]
        task["id"] = n + 1
        task["annotations"] = [{"id": 50 + n, "updated_at": "2026-05-01T08:00:00Z", "completed_by": 7, "result": result}]
    ls_export = tmp_path / "export.json"
    ls_export.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")

    out = tmp_path / "rec"
    assert export(ls_export, "--format", "paddlex-rec", "--out", out, "--profile", "bundled", "--root", folder, "--val-fraction", "0.5") == 0
    rows = read_list(out / "train.txt") + read_list(out / "val.txt")
    assert Counter(t for _, t in rows) == Counter(corrected_texts)  # every corrected line, once
    assert sum(t.startswith("Reviewed") for _, t in rows) == 4
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["rec_lines"] == len(corrected_texts) and manifest["issues"] == []
    assert manifest["model_versions"] == [engine.model_version]
    result = paddlex_check("rec", out, tmp_path)
    assert result["check_pass"] and result["train"] + result["val"] == len(corrected_texts)


def test_exif_rotated_photo_exports_upright_pixels(tmp_path, real_images, engine):
    """Labels are in display orientation; a trainer reads raw pixels. The export writes the
    upright image, and its crops still read as the pipeline read them."""
    path = real_images / "img_exif_orientation.jpg"
    page = engine.predict_one(path)
    db = tmp_path / "s.db"
    with Store(db) as store:
        store.set_image_state(store.add_page(page, str(path)), "reviewed", who="alice")
    out = tmp_path / "ppocr"
    assert export(db, "--format", "paddleocr", "--out", out, "--profile", "bundled", "--val-fraction", "0") == 0
    ((rel, label),) = read_list(out / "Label.txt")
    assert rel.endswith(".png")
    image = cv2.imread(str(out / rel))
    assert (image.shape[1], image.shape[0]) == (page.width, page.height)
    assert [i["transcription"] for i in json.loads(label)] == texts(page)
    rows = read_list(out / "rec_gt.txt")
    with paddlex_pipeline(engine) as inner:
        read = [str(r["rec_text"]) for r in inner.text_rec_model([cv2.imread(str(out / r)) for r, _ in rows])]
    assert read == [t for _, t in rows] and read[0] == "我是中国人"
