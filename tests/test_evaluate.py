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
