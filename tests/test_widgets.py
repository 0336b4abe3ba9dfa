"""The models behind the JupyterLab widgets, with a real store and the real bundled engine
(no browser: the browser test drives the same code through Chromium)."""

from __future__ import annotations

import json

import pytest

from svtr_label.core.page import IGNORE_TEXT
from svtr_label.errors import UsageError
from svtr_label.store import Store
from svtr_label_widgets import render
from svtr_label_widgets.bridge import Bridge, row_class, script_html
from svtr_label_widgets.editor import Editor, EditorModel


@pytest.fixture()
def review_store(tmp_path, synth_set, synth_predictions):
    """A fresh store holding the engine's predictions for the generated pages."""
    folder, pages = synth_set
    store = Store(tmp_path / "review.sqlite")
    for synth, page in zip(pages, synth_predictions):
        store.add_page(page, image_ref=str(folder / synth.name))
    yield store
    store.close()


@pytest.fixture()
def model(review_store, engine):
    return EditorModel(review_store, review_store.image_ids()[:3], engine=engine, who="tester")


def test_lines_come_lowest_score_first_and_low_ones_are_flagged(model):
    scores = [r.score for r in model.lines]
    assert scores == sorted(scores)
    model.low_score = 2.0  # every predicted line is "low" now
    assert all(model.is_low(r) for r in model.lines)
    model.accept()
    assert not model.is_low(model.lines[0])  # checked lines are no longer flagged


def test_accept_with_typed_text_is_in_the_store_after_a_restart(model, review_store):
    region = model.current
    model.accept("Corrected text", region.id)
    assert model.current.id != region.id  # moved on to the next unchecked line
    # A new connection is what a restarted kernel gets.
    reopened = Store(review_store.path)
    page = reopened.current_page(model.image_id)
    assert {r.id: r.text for r in page.regions}[region.id] == "Corrected text"
    assert reopened.region_states(model.image_id)[region.id] == "accepted"
    assert reopened.get_image(model.image_id).state == "in_progress"
    reopened.close()


def test_unchanged_text_records_no_edit(model, review_store):
    region = model.current
    assert model.set_text(region.text, region.id) is False
    assert review_store.history(model.image_id) == []


def test_illegible_delete_and_undo(model, review_store):
    first = model.current
    model.mark_illegible()
    assert model.current.text == IGNORE_TEXT and model.current.id == first.id
    n = len(model.lines)
    model.delete()
    assert len(model.lines) == n - 1 and first.id not in [r.id for r in model.lines]
    model.undo()
    assert first.id in [r.id for r in model.lines]
    model.undo()
    assert {r.id: r.text for r in model.lines}[first.id] == first.text
    model.undo()
    assert "nothing to undo" in model.message


def test_checking_every_line_marks_the_image_reviewed_and_undo_reopens_it(model, review_store):
    for _ in range(len(model.lines)):
        model.accept()
    assert review_store.get_image(model.image_id).state == "reviewed"
    assert model.progress().images_reviewed == 1
    model.undo()
    assert review_store.get_image(model.image_id).state == "in_progress"
    assert model.progress().images_reviewed == 0


def test_drawn_box_is_read_by_the_engine(model, synth_set):
    """Delete a line, draw its true box again: the engine reads the true text into it."""
    folder, pages = synth_set
    truth = pages[0].lines[0]
    model.go_to_image(0)
    model.delete(min(model.lines, key=lambda r: render.bounds(r.points).y).id)  # the top line
    rid = model.add_region(truth.quad)
    added = {r.id: r for r in model.lines}[rid]
    assert added.text == truth.text and added.score is not None
    assert model.current.id == rid
    model.undo()  # one undo takes the whole drawn box back
    assert rid not in [r.id for r in model.lines]


def test_moving_a_vertex_writes_points_and_rereading_updates_text(model, review_store):
    region = model.current
    model.move_vertex(2, 10_000, 10_000)  # dragged off the page: clamped to the corner
    moved = model.current
    assert moved.id == region.id and moved.points[2] == (model.page.width, model.page.height)
    assert review_store.history(model.image_id)[-1].op == "set_points"
    model.undo()
    assert model.current.points == region.points
    model.nudge(0, -3)  # no vertex selected: the whole box moves
    assert all(abs(a[1] - b[1] - 3) < 1e-6 for a, b in zip(region.points, model.current.points))
    model.set_text("garbage")
    assert model.rerecognize() == region.text
    reread = model.current
    expected = model.engine.recognize(model.images.get(model.image_id), [reread.points])[0]
    assert reread.score == expected.score  # the re-read's own score, not the old prediction's
    stored = {r.id: r for r in review_store.current_page(model.image_id).regions}[region.id]
    assert (stored.text, stored.score) == (region.text, expected.score)


def test_browser_commands_drive_the_model(model, review_store):
    """The JSON the page script sends (see bridge.py) maps onto the same actions."""
    second = model.lines[1]
    model.handle({"cmd": "select", "region": second.id})
    assert model.current.id == second.id
    model.handle({"cmd": "accept", "region": second.id, "text": "typed then Enter"})
    assert {r.id: r.text for r in model.lines}[second.id] == "typed then Enter"
    model.handle({"cmd": "next_line", "region": second.id, "text": "typed then Enter"})  # unchanged: no edit
    model.handle({"cmd": "vertex", "vertex": 0})
    assert model.vertex == 0
    before = model.current.points[0]
    model.handle({"cmd": "nudge", "dx": 5, "dy": 0})
    assert model.current.points[0][0] == min(before[0] + 5, model.page.width)
    model.handle({"cmd": "next_image"})
    assert model.position == 1
    ops = [e.op for e in review_store.history(model.image_ids[0])]
    assert ops == ["set_text", "accept_region", "set_points"]


def test_editor_view_renders_quads_rows_and_writes_typed_text(review_store, engine):
    editor = Editor(review_store, engine=engine, who="tester")
    model = editor.model
    svg = editor.overlay.value
    assert svg.count('class="svtr-quad') == len(model.lines)
    assert svg.count('class="svtr-vertex"') == len(model.current.points)
    assert "data:image/jpeg;base64," in editor.base.value and "svtrLabel" in editor.base.value
    assert len(editor.lines.children) == len(model.lines)
    row = editor._rows[model.current.id]
    row.text.value = "typed in the box"  # what ipywidgets does on Enter / leaving the box
    assert review_store.current_page(model.image_id).regions  # still readable
    assert {r.id: r.text for r in review_store.current_page(model.image_id).regions}[row.region_id] == "typed in the box"
    editor._command({"cmd": "zoom"})
    assert editor._base_key[1] != render.whole_page(model.page.width, model.page.height)
    editor._command({"cmd": "delete", "region": "no-such-line"})
    assert "no line" in editor.status.value  # an error is shown, not raised into the notebook


def test_bridge_ignores_anything_but_commands():
    seen = []
    bridge = Bridge("abc", seen.append)
    bridge.widget.value = "not json"
    bridge.widget.value = json.dumps({"cmd": "undo", "n": 1})
    assert seen == [{"cmd": "undo", "n": 1}]
    assert "svtr-bridge-abc" in bridge.widget._dom_classes


def test_row_class_round_trips_any_region_id():
    for rid in ("b2b0397fa1", "user-1", "中文 id/with spaces"):
        cls = row_class(rid)
        assert cls.replace("-", "").isalnum()
        hexpart = cls[len("svtr-rid-"):]
        assert bytes.fromhex(hexpart).decode("utf-16-be") == rid
    assert "</script" not in script_html()[len("<script"):-len("</script>") - 200]


def test_zoom_box_stays_inside_the_page():
    box = render.zoom_box([(880, 5), (899, 5), (899, 20), (880, 20)], 900, 600)
    assert box.x >= 0 and box.y >= 0 and box.x + box.width <= 900 and box.y + box.height <= 600
    assert box.width >= 19 and box.height >= 15


def test_model_needs_images(tmp_path):
    with pytest.raises(UsageError, match="no images"):
        EditorModel(Store(tmp_path / "empty.sqlite"))


# --- browser ---------------------------------------------------------------------------------


def test_browser_filters_sorts_and_samples(review_store):
    from svtr_label_widgets.browser import BrowserModel, histogram

    model = BrowserModel(review_store, page_size=5)
    rows = model.rows()
    assert len(rows) == 12 and model.n_pages() == 3
    lows = [i.min_score for i in rows]
    assert lows == sorted(lows)  # lowest line confidence first
    first = rows[0]
    word = model.pages[first.id].regions[0].text[:3]
    model.set_filters(text=word.upper() if word.isascii() else word)
    assert first.id in [i.id for i in model.rows()]
    assert all(any(word.casefold() in r.text.casefold() for r in model.pages[i.id].regions) for i in model.rows())
    model.set_filters(text="", max_score=first.min_score)
    assert [i.id for i in model.rows()] == [first.id] or all(i.min_score <= first.min_score for i in model.rows())
    model.set_filters(max_score=None, model_version="no-such-model")
    assert model.rows() == []
    model.set_filters(model_version=review_store.get_image(first.id).model_versions[0], sample=4, seed=3)
    sample = [i.id for i in model.rows()]
    assert len(sample) == 4 and sample == [i.id for i in model.rows()]  # same seed, same sample
    model.set_filters(seed=4)
    assert len(model.rows()) == 4
    assert histogram([0.0, 0.05, 0.95, 1.0], bins=10) == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]


def test_browser_summary_follows_review_state(review_store):
    from svtr_label_widgets.browser import BrowserModel

    image_id = review_store.image_ids()[0]
    page = review_store.current_page(image_id)
    review_store.accept_region(image_id, page.regions[0].id, who="t")
    review_store.set_image_state(review_store.image_ids()[1], "reviewed", who="t")
    model = BrowserModel(review_store)
    s = model.summary()
    assert s.n_images == 12 and s.lines_checked == 1
    assert s.by_state == {"in_progress": 1, "reviewed": 1, "unreviewed": 10}
    assert sum(s.histogram) == s.n_lines
    model.set_filters(state="reviewed")
    assert [i.id for i in model.rows()] == [review_store.image_ids()[1]]


def test_browser_view_shows_thumbnails_and_opens_the_editor(review_store, engine):
    from svtr_label_widgets.browser import Browser

    browser = Browser(review_store, engine=engine, page_size=4)
    assert len(browser.grid.children) == 4
    assert browser.grid.children[0].children[0].value[:2] == b"\xff\xd8"  # a JPEG thumbnail
    browser.search.value = "no line says this"
    assert browser.grid.children == () and "0 images" in browser.pager.value
    browser.search.value = ""
    target = browser.model.rows()[2].id
    editor = browser.open_editor(target)
    assert editor.model.image_id == target and editor.model.image_ids == [i.id for i in browser.model.rows()]


# --- export panel ----------------------------------------------------------------------------


def test_export_panel_exports_corrected_images_and_tables_invalid_lines(review_store, tmp_path):
    from svtr_label_widgets.export_panel import ExportChoice, ExportPanel, run

    ids = review_store.image_ids()
    for image_id in ids[:4]:
        page = review_store.current_page(image_id)
        review_store.set_text(image_id, page.regions[0].id, "checked", who="t")
    bad = review_store.current_page(ids[0]).regions[1]
    review_store.set_text(ids[0], bad.id, "x" * 500, who="t")  # longer than any recognizer takes
    steps = []
    result = run(review_store, ExportChoice(out=tmp_path / "rec", dictionary="bundled"), lambda p, m: steps.append((p, m)))
    assert result.path is not None and steps[-1][0] == 100
    per_image = [m for _, m in steps if "image" in m and " of " in m]
    assert per_image == [f"writing paddleocr: image {i} of 4" for i in range(1, 5)]  # the 4 corrected images
    assert [p for p, _ in steps] == sorted(p for p, _ in steps)
    assert [i.region_id for i in result.report.issues] == [bad.id]
    assert (result.path / "manifest.json").is_file()

    panel = ExportPanel(review_store, out=tmp_path / "panel")
    panel.on_invalid.value = "fail"
    assert panel.export().path is None
    assert "nothing written" in panel.result.value and bad.id in panel.issues.value
    panel.on_invalid.value = "drop"
    panel.export()
    assert str(tmp_path / "panel") in panel.result.value and panel.progress.value == 100
    panel.dictionary.value = str(tmp_path / "missing-dict.txt")
    assert panel.export() is None and "export failed" in panel.result.value


def test_editor_copes_with_an_empty_page_and_a_missing_file(tmp_path):
    from svtr_label.core.page import Page, Region

    store = Store(tmp_path / "s.sqlite")
    empty = store.add_page(Page(width=300, height=100, sha256="a" * 64, model_version="m"), image_ref=str(tmp_path / "gone.png"))
    editor = Editor(store)
    assert "picture not shown" in editor.status.value and editor.lines.children == ()
    editor._command({"cmd": "accept"})
    assert "no lines" in editor.status.value
    editor._command({"cmd": "add", "points": [[10, 10], [120, 10], [120, 40], [10, 40]]})  # no engine: empty text
    assert len(editor.model.lines) == 1 and editor.model.current.text == ""
    editor._rows[editor.model.current.id].text.value = "typed by hand"
    assert store.current_page(empty).regions[0].text == "typed by hand"
    assert isinstance(store.current_page(empty).regions[0], Region)
