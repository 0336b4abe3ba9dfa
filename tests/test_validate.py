"""Validation before export: each way PaddleOCR's trainer would drop or misread a sample."""

from __future__ import annotations

from svtr_label.core.page import IGNORE_TEXT, Page, Region
from svtr_label.ocr.profiles import bundled_model_dirs, dictionary_of
from svtr_label.dataset.validate import DEFAULT_MAX_TEXT_LENGTH, Rules, load_dictionary, validate
from conftest import models_dir  # noqa: E402

BOX = ((0, 0), (100, 0), (100, 30), (0, 30))


def page(*regions: Region) -> Page:
    return Page(200, 100, "0" * 64, regions)


def kinds(p: Page, rules: Rules, targets=("det", "rec")) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for issue in validate([("img.png", p)], rules, targets).issues:
        out.setdefault(issue.region_id, set()).add(issue.kind)
    return out


def test_each_kind_of_problem_is_found_with_the_real_dictionary():
    _, rec = bundled_model_dirs(models_dir())
    rules = Rules(frozenset(dictionary_of(rec)), DEFAULT_MAX_TEXT_LENGTH)
    p = page(
        Region("ok", BOX, "Invoice 2024 发票号码"),
        Region("long", BOX, "x" * 24),
        Region("max", BOX, "y" * 23),
        Region("tab", BOX, "a\tb"),
        Region("nl", BOX, "line one\nline two"),
        Region("cr", BOX, "windows\r"),
        Region("empty", BOX, "  "),
        Region("emoji", BOX, "ok 🙂"),
        Region("flat", ((0, 0), (100, 0), (100, 0.001), (0, 0.001)), "flat"),
        Region("bowtie", ((0, 0), (100, 30), (100, 0), (0, 30)), "bow tie"),
        Region("ill", ((0, 0), (100, 30), (100, 0), (0, 30)), IGNORE_TEXT),
        Region("ignored", BOX, IGNORE_TEXT),
    )
    found = kinds(p, rules)
    assert found == {
        "long": {"too_long"},
        "tab": {"control_char"},
        "nl": {"control_char"},
        "cr": {"control_char"},
        "empty": {"empty_text"},
        "emoji": {"out_of_dict"},
        "flat": {"degenerate"},
        "bowtie": {"self_intersecting"},
        "ill": {"self_intersecting"},  # '###' text is never checked, its outline still is
    }


def test_detection_only_checks_outlines_and_report_prints_a_table():
    p = page(Region("long", BOX, "x" * 40), Region("flat", ((0, 0), (0, 0), (5, 5), (5, 5)), "a"))
    report = validate([("scan.jpg", p)], Rules(None), targets=("det",))
    assert [(i.region_id, i.kind, i.target) for i in report.issues] == [("flat", "degenerate", "det")]
    assert report.bad("rec") == {("scan.jpg", "flat")}  # a bad outline cannot be cropped either
    table = report.table()
    assert "scan.jpg" in table and "degenerate" in table and table.count("\n") == 2
    assert validate([("a", page(Region("ok", BOX, "fine")))], Rules(None)).table() == "no issues"


def test_dictionary_file_keeps_every_character(tmp_path):
    # U+2028 and U+0085 are line breaks to str.splitlines(); in a dictionary they are characters.
    path = tmp_path / "dict.txt"
    path.write_text("a\n\u2028\n\u0085\nb\n", encoding="utf-8")
    assert load_dictionary(path) == ["a", "\u2028", "\u0085", "b", " "]
