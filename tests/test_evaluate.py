"""`svtr-label eval` against known truth: the reported accuracy equals an independent count."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from shapely.geometry import Polygon

from svtr_label.cli import main
from svtr_label.dataset.evaluate import compare_page, evaluate, levenshtein, match, metrics
from svtr_label.core.page import IGNORE_TEXT, Page, Region
from svtr_label.store import Store

from test_store import annotated_task, truth_page


def box(x0, y0, x1, y1):
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def iou(a, b) -> float:
    pa, pb = Polygon(a), Polygon(b)
    return pa.intersection(pb).area / pa.union(pb).area


@pytest.mark.pipeline
def test_eval_cli_accuracy_equals_an_independent_count(tmp_path, synth_set, engine, capsys):
    folder, pages = synth_set
    chosen = pages[6:9]
    pred_file = tmp_path / "pred.json"
    assert main(["predict", *[str(folder / p.name) for p in chosen], "--profile", "bundled", "--root", str(folder),
                 "-o", str(pred_file), "--no-progress"]) == 0

    # Truth: the generated lines, with two texts changed (lines the model now gets "wrong"),
    # one line dropped (its prediction becomes a false positive) and one marked '###'.
    tasks, truths = [], []
    for n, sp in enumerate(chosen):
        page = truth_page(sp, folder / sp.name)
        regions = list(page.regions)
        if n == 0:
            regions[0] = regions[0].with_(text=regions[0].text + "!")
            regions[1] = regions[1].with_(text=IGNORE_TEXT)
        if n == 1:
            regions[2] = regions[2].with_(text="Something else")
            del regions[5]
        page = page.with_(regions=tuple(regions))
        truths.append(page)
        tasks.append(annotated_task(n + 1, f"/data/local-files/?d={sp.name}", page, 100 + n))
    truth_file = tmp_path / "truth.json"
    truth_file.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")

    out_json, out_png = tmp_path / "eval.json", tmp_path / "eval.png"
    assert main(["eval", "--truth", str(truth_file), "--pred", str(pred_file), "--root", str(folder),
                 "--json", str(out_json), "--plot", str(out_png)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out_json.read_text(encoding="utf-8"))
    (version,) = result["model_versions"]
    assert version == engine.model_version and "ALL" in printed
    overall = result["model_versions"][version]["overall"]

    # Independent count, straight from shapely: a truth line is right when its best-overlapping
    # predicted line (IoU > 0.5) has exactly its text; predictions overlapping no truth line
    # that way are false positives. (The generated lines do not touch: best overlap is one-to-one.)
    preds = [p.regions for p in engine.predict([folder / sp.name for sp in chosen])]
    n_truth = correct = false_pos = on_ignored = 0
    for truth, pred in zip(truths, preds):
        for t in truth.regions:
            best = max(pred, key=lambda p: iou(p.points, t.points))
            hit = iou(best.points, t.points) > 0.5
            if t.illegible:
                on_ignored += hit
                continue
            n_truth += 1
            correct += hit and best.text == t.text
        false_pos += sum(not any(iou(p.points, t.points) > 0.5 for t in truth.regions) for p in pred)
    n_pred = sum(len(p) for p in preds) - on_ignored
    assert overall["truth_lines"] == n_truth == 22
    assert overall["correct"] == correct and overall["line_acc"] == pytest.approx(correct / n_truth)
    assert correct <= n_truth - 2  # the two changed lines at least
    assert overall["pred_lines"] == n_pred and false_pos >= 1
    assert overall["det_precision"] == pytest.approx((n_pred - false_pos) / n_pred)
    assert overall["det_recall"] == pytest.approx(overall["matched"] / n_truth)
    assert len(result["model_versions"][version]["images"]) == 3
    assert {e["truth"] for e in result["model_versions"][version]["errors"]} >= {"Something else"}
    with Image.open(out_png) as im:
        assert im.format == "PNG" and im.size[0] > 300


def test_matching_is_one_to_one_and_ignores_illegible():
    truth = Page(300, 100, "", (Region("a", box(0, 0, 100, 30), "alpha"), Region("b", box(0, 50, 100, 80), IGNORE_TEXT)))
    pred = Page(300, 100, "", (
        Region("p1", box(0, 0, 100, 30), "alpha", 0.99),
        Region("p2", box(2, 1, 100, 31), "alpha", 0.98),  # a duplicate: one match only
        Region("p3", box(0, 50, 100, 80), "junk", 0.5),  # on the '###' region: not counted
    ))
    assert [(t, p) for t, p, _ in match(truth.regions, pred.regions)] == [(0, 0), (1, 2)]
    m = metrics([compare_page("x", truth, pred)])
    assert (m.truth_lines, m.pred_lines, m.matched, m.correct) == (1, 2, 1, 1)
    assert m.det_precision == 0.5 and m.det_recall == 1.0 and m.det_hmean == pytest.approx(2 / 3)


def test_spaces_edit_distance_and_model_versions(tmp_path):
    truth = Page(300, 100, "s" * 64, (Region("a", box(0, 0, 100, 30), "ab cd"), Region("b", box(0, 40, 100, 70), "kitten")))
    store = Store(tmp_path / "s.db")
    v1 = truth.with_(model_version="m1", regions=(truth.regions[0].with_(text="abcd", score=0.9), truth.regions[1].with_(text="sitting", score=0.6)))
    v2 = truth.with_(model_version="m2", regions=(truth.regions[0].with_(score=0.99), truth.regions[1].with_(score=0.97)))
    image_id = store.add_page(v1, "page.png")
    store.add_page(v2, "page.png")
    store.import_label_studio_tasks([annotated_task(1, "page.png", truth, 1)])
    result = evaluate(store, store).to_dict()
    m1, m2 = result["model_versions"]["m1"]["overall"], result["model_versions"]["m2"]["overall"]
    assert (m1["line_acc"], m1["line_acc_nospace"]) == (0.0, 0.5)
    assert m1["norm_edit_dis"] == pytest.approx(1 - (1 / 5 + 3 / 7) / 2)
    assert m2["line_acc"] == 1.0 and m2["norm_edit_dis"] == 1.0
    table = {row["threshold"]: row for row in result["model_versions"]["m1"]["confidence"]}
    assert (table[0.0]["lines"], table[0.7]["lines"], table[0.95]["lines"]) == (2, 1, 0)
    assert levenshtein("kitten", "sitting") == 3 and levenshtein("", "abc") == 3
    assert store.get_image(image_id).state == "reviewed"


def test_eval_names_the_fix_when_a_predicted_image_without_lines_is_elsewhere(tmp_path, capsys):
    """A page with no lines carries no size in its results: its file must be found (--root)."""
    import json

    from svtr_label.cli import main

    pred = tmp_path / "tasks.json"
    pred.write_text(json.dumps([{"data": {"image": "/data/local-files/?d=scans/blank.png"},
                                 "predictions": [{"model_version": "m", "result": []}]}]))
    assert main(["eval", "--truth", str(pred), "--pred", str(pred), "--root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "scans/blank.png" in err and "pass --root" in err


# --- several models side by side (svtr-label eval with several sets) ---------------------------

TRUTH_TEXTS = ("alpha", "ab cd", "kitten", "omega")
LINE_BOXES = (box(10, 10, 200, 40), box(10, 50, 200, 80), box(10, 90, 200, 120), box(10, 130, 200, 160))


def side_by_side_rows(printed: str) -> dict[int, list[str]]:
    """The rows of the side-by-side table as a user reads them: number -> its cells."""
    lines = printed.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:3] == ["#", "exact", "nospace"])
    rows = {}
    for line in lines[start + 1:]:
        if not line.strip() or not line.split()[0].isdigit():
            break
        rows[int(line.split()[0])] = line.split()
    return rows


@pytest.fixture
def known_sets(tmp_path):
    """One page with four corrected lines; `good.sqlite` reads them all right, `worse.json` (a
    tasks file) gets one right, one right but for a space, one wrong, misses one and adds one."""
    from svtr_label.core.images import read_image
    from svtr_label.labelstudio.format import load_config, make_task

    Image.new("RGB", (400, 200), "white").save(tmp_path / "page.png")
    sha = read_image(tmp_path / "page.png").sha256
    truth = Page(400, 200, sha, tuple(Region(f"t{i}", b, t) for i, (b, t) in enumerate(zip(LINE_BOXES, TRUTH_TEXTS))))
    with Store(tmp_path / "truth.sqlite", root=tmp_path) as store:
        store.import_label_studio_tasks([annotated_task(1, "page.png", truth, 1)])
    good = truth.with_(model_version="m-good", regions=tuple(r.with_(score=0.99) for r in truth.regions))
    with Store(tmp_path / "good.sqlite") as store:
        store.add_page(good, "page.png")
    worse = truth.with_(model_version="m-worse", regions=(
        Region("p0", LINE_BOXES[0], "alpha", 0.95),
        Region("p1", LINE_BOXES[1], "abcd", 0.9),
        Region("p2", LINE_BOXES[2], "sitting", 0.6),
        Region("p3", box(220, 160, 390, 190), "junk", 0.3),  # over no truth line: a false positive
    ))
    (tmp_path / "worse.json").write_text(json.dumps([make_task(worse, "page.png", load_config(None))]), encoding="utf-8")
    return tmp_path


def test_two_prediction_sets_side_by_side_with_known_numbers(known_sets, capsys):
    d = known_sets
    out_json, out_png = d / "cmp.json", d / "cmp.png"
    assert main(["eval", "--truth", str(d / "truth.sqlite"), "--pred", str(d / "good.sqlite"), "--pred", str(d / "worse.json"),
                 "--root", str(d), "--json", str(out_json), "--plot", str(out_png)]) == 0
    printed = capsys.readouterr().out
    rows = side_by_side_rows(printed)
    # exact, without spaces, normalized edit distance, det hmean, s/page, load, matched, images
    assert rows[1][1:9] == ["1.0000", "1.0000", "1.0000", "1.0000", "-", "-", "4/4", "1"]
    ned = 1 - (0 + 1 / 5 + 3 / 7 + 1) / 4  # alpha, "ab cd"->"abcd", kitten->sitting, omega missed
    assert rows[2][1:9] == ["0.2500", "0.5000", f"{ned:.4f}", "0.7500", "-", "-", "3/4", "1"]
    assert " ".join(rows[1][9:]) == "good.sqlite · m-good" and " ".join(rows[2][9:]) == "worse.json · m-worse"

    result = json.loads(out_json.read_text(encoding="utf-8"))
    good, worse = result["models"]
    assert (good["label"], worse["label"]) == ("good.sqlite · m-good", "worse.json · m-worse")
    assert worse["overall"]["line_acc"] == 0.25 and worse["overall"]["norm_edit_dis"] == pytest.approx(ned)
    assert (worse["overall"]["det_precision"], worse["overall"]["det_recall"]) == (0.75, 0.75)
    assert good["seconds_per_page"] is None and worse["timing"] is None
    conf = {row["threshold"]: row for row in worse["confidence"]}
    assert (conf[0.0]["lines"], conf[0.0]["accuracy"]) == (3, pytest.approx(1 / 3))
    assert (conf[0.9]["lines"], conf[0.9]["accuracy"], conf[0.95]["lines"], conf[0.95]["accuracy"]) == (2, 0.5, 1, 1.0)
    # Accuracy vs confidence: one table, one column per model.
    at_09 = next(line for line in printed.splitlines() if line.split()[:1] == ["0.900"])
    assert at_09.split() == ["0.900", "1.0000", "(1.000)", "0.5000", "(0.667)"]
    assert {s["name"] for s in result["sets"]} == {"good.sqlite", "worse.json"}
    with Image.open(out_png) as im:
        assert im.format == "PNG" and im.size[0] > 300


def test_a_store_holding_two_model_versions_gives_two_rows(tmp_path, capsys):
    truth = Page(300, 100, "s" * 64, (Region("a", box(0, 0, 100, 30), "ab cd"), Region("b", box(0, 40, 100, 70), "kitten")))
    db = tmp_path / "two.sqlite"
    with Store(db) as store:
        store.add_page(truth.with_(model_version="m1", regions=(truth.regions[0].with_(text="abcd", score=0.9), truth.regions[1].with_(score=0.6))), "page.png")
        store.add_page(truth.with_(model_version="m2", regions=tuple(r.with_(score=0.99) for r in truth.regions)), "page.png")
        store.import_label_studio_tasks([annotated_task(1, "page.png", truth, 1)])
    out_json = tmp_path / "e.json"
    assert main(["eval", "--truth", str(db), "--pred", str(db), "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("model_version m1") == 1 and printed.count("model_version m2") == 1  # the per-image tables, as before
    rows = side_by_side_rows(printed)
    assert rows[1][1:3] == ["0.5000", "1.0000"] and " ".join(rows[1][9:]) == "two.sqlite · m1"
    assert rows[2][1:3] == ["1.0000", "1.0000"] and " ".join(rows[2][9:]) == "two.sqlite · m2"
    result = json.loads(out_json.read_text(encoding="utf-8"))
    assert [m["model_version"] for m in result["models"]] == ["m1", "m2"]
    assert sorted(result["model_versions"]) == ["m1", "m2"]  # the one-set JSON keys stay


def test_one_pred_one_model_prints_what_it_printed_before(known_sets, capsys):
    from svtr_label.dataset.evaluate import format_table

    d = known_sets
    assert main(["eval", "--truth", str(d / "truth.sqlite"), "--pred", str(d / "worse.json"), "--root", str(d)]) == 0
    with Store(d / "truth.sqlite", root=d) as truth:
        from svtr_label.store import open_input

        with open_input(d / "worse.json", root=d) as pred:
            expected = format_table(evaluate(truth, pred))
    assert capsys.readouterr().out == expected + "\n"


def test_bad_sets_fail_alone_naming_their_file(known_sets, tmp_path, capsys):
    d = known_sets
    other = Page(300, 100, "o" * 64, (Region("a", box(0, 0, 100, 30), "x", 0.9),), model_version="m-other")
    with Store(d / "other.sqlite") as store:
        store.add_page(other, "elsewhere.png")
    missing = d / "missing.json"
    code = main(["eval", "--truth", str(d / "truth.sqlite"), "--pred", str(missing), "--pred", str(d / "good.sqlite"),
                 "--pred", str(d / "other.sqlite"), "--root", str(d)])
    captured = capsys.readouterr()
    assert code == 2
    rows = side_by_side_rows(captured.out)
    assert len(rows) == 1 and rows[1][-1] == "m-good"  # the good set is still compared
    err = captured.err.splitlines()
    assert any(str(missing) in line and "no such file" in line for line in err)
    assert any(line.startswith("svtr-label eval: error: other.sqlite:") and "none of the 1 predicted images is one of the truth's 1 corrected images" in line for line in err)


def test_truth_without_corrections_and_nothing_to_compare_are_refused(known_sets, capsys):
    d = known_sets
    assert main(["eval", "--truth", str(d / "good.sqlite"), "--pred", str(d / "worse.json"), "--root", str(d)]) == 2
    err = capsys.readouterr().err
    assert "good.sqlite: no corrected image" in err
    assert main(["eval", "--truth", str(d / "truth.sqlite")]) == 2
    assert "--pred FILE" in capsys.readouterr().err


def test_known_truth_of_generated_pages_is_a_corrected_truth(tmp_path):
    from svtr_label.core.synth import write_dataset
    from svtr_label.dataset.compare import known_truth_store, require_corrected

    pages = write_dataset(tmp_path, 2, seed=5, n_lines=3)
    (tmp_path / pages[1].name).unlink()  # a listed file that is gone is left out
    store = known_truth_store(tmp_path / "truth.json")
    (image_id,) = require_corrected(store)
    assert [r.text for r in store.current_page(image_id).regions] == [line.text for line in pages[0].lines]


@pytest.mark.pipeline
def test_profile_run_is_timed_and_reads_what_its_predict_file_reads(tmp_path, synth_set, capsys):
    """`--profile bundled` runs the models on the truth's images now: it must score exactly what
    `svtr-label predict` of the same model scores on the same pages, and say how long it took."""
    folder, pages = synth_set
    chosen = pages[9:12]
    pred_file = tmp_path / "pred.json"
    assert main(["predict", *[str(folder / p.name) for p in chosen], "--profile", "bundled", "--root", str(folder),
                 "-o", str(pred_file), "--no-progress"]) == 0
    tasks = [annotated_task(n + 1, f"/data/local-files/?d={sp.name}", truth_page(sp, folder / sp.name), 100 + n)
             for n, sp in enumerate(chosen)]
    # A corrected page whose file is not there: the profile cannot read it, and says so.
    gone = truth_page(chosen[0], folder / chosen[0].name).with_(sha256="")
    tasks.append(annotated_task(9, "/data/local-files/?d=gone/page.png", gone, 109))
    truth_file = tmp_path / "truth.json"
    truth_file.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")

    out_json, out_png = tmp_path / "eval.json", tmp_path / "eval.png"
    assert main(["eval", "--truth", str(truth_file), "--pred", str(pred_file), "--profile", "bundled", "--root", str(folder),
                 "--json", str(out_json), "--plot", str(out_png), "--no-progress"]) == 0
    captured = capsys.readouterr()
    from_file, profile = json.loads(out_json.read_text(encoding="utf-8"))["models"]
    assert profile["set"] == "profile bundled" and profile["model_version"] == from_file["model_version"]
    assert profile["overall"] == from_file["overall"]  # same model, same pages: same reading
    assert profile["overall"]["images"] == 3 and 0.8 <= profile["overall"]["line_acc"] <= 1.0
    assert profile["overall"]["det_hmean"] >= 0.9
    timing = profile["timing"]
    assert timing["pages"] == 3 and 0 < profile["seconds_per_page"] < 60 and timing["model_load_seconds"] > 0
    assert from_file["seconds_per_page"] is None
    rows = side_by_side_rows(captured.out)
    assert rows[1][5] == "-" and float(rows[2][5]) == pytest.approx(profile["seconds_per_page"], abs=1e-3)
    assert "gone/page.png" in captured.err and "1 truth images could not be read" in captured.err
    with Image.open(out_png) as im:
        assert im.format == "PNG" and im.size[0] > 300
