"""The models behind the JupyterLab widgets, with a real store and the real bundled engine
(no browser: tests/test_editor_browser.py drives the same code through Chromium)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from svtr_label.core.page import IGNORE_TEXT, Page, Region
from svtr_label.dataset.validate import MIN_CROP_HEIGHT, Rules, crop_size, validate
from svtr_label.errors import UsageError
from svtr_label.store import Store
from svtr_label_widgets import render
from svtr_label_widgets.editor import Editor, EditorModel, crop_key
from svtr_label_widgets.keys import GESTURES, KEYMAP, help_rows
from svtr_label_widgets.review import rotated, rotated_box

REPO = Path(__file__).resolve().parents[1]
EDITOR_JS = REPO / "widgets" / "static" / "editor.js"


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


def by_id(model: EditorModel) -> dict[str, Region]:
    return {r.id: r for r in model.lines}


# --- review logic ------------------------------------------------------------------------------


def test_lines_come_lowest_score_first_and_low_ones_are_flagged(model):
    scores = [r.score for r in model.lines]
    assert scores == sorted(scores)
    model.low_score = 2.0  # every predicted line is "low" now
    assert all(model.is_low(r) for r in model.lines)
    model.accept()
    assert not model.is_low(model.lines[0])  # checked lines are no longer flagged


def test_typed_lines_are_corrected_untouched_ones_accepted_and_both_survive_a_restart(model, review_store):
    first = model.current
    model.accept("Corrected text", first.id)
    assert model.current.id != first.id  # moved on to the next unchecked line
    second = model.current
    model.accept()
    assert model.state_of(by_id(model)[first.id]) == "corrected"
    assert model.state_of(by_id(model)[second.id]) == "accepted"
    # A new connection is what a restarted kernel gets.
    with Store(review_store.path) as reopened:
        page = reopened.current_page(model.image_id)
        assert {r.id: r.text for r in page.regions}[first.id] == "Corrected text"
        assert reopened.region_states(model.image_id) == {first.id: "corrected", second.id: "accepted"}
        assert reopened.get_image(model.image_id).state == "in_progress"


def test_unchanged_text_records_no_edit_and_a_newline_never_reaches_the_store(model, review_store):
    region = model.current
    assert model.set_text(region.text, region.id) is False
    assert review_store.history(model.image_id) == []
    model.set_text("two\nlines\r", region.id)
    assert by_id(model)[region.id].text == "two lines"


def test_illegible_delete_undo_and_redo(model, review_store):
    first = model.current
    model.mark_illegible()
    assert model.current.text == IGNORE_TEXT and model.current.id == first.id
    n = len(model.lines)
    model.delete()
    assert len(model.lines) == n - 1 and first.id not in by_id(model)
    model.undo()
    assert first.id in by_id(model)
    model.redo()
    assert first.id not in by_id(model) and "redone" in model.message
    model.undo()
    model.undo()
    assert by_id(model)[first.id].text == first.text
    model.undo()
    assert "nothing of yours" in model.message
    model.redo()
    assert by_id(model)[first.id].text == IGNORE_TEXT


def test_checking_every_line_marks_the_image_reviewed_and_undo_reopens_it(model, review_store):
    for _ in range(len(model.lines)):
        model.accept()
    assert review_store.get_image(model.image_id).state == "reviewed"
    assert model.progress().images_reviewed == 1 and "reviewed" in model.message
    model.undo()
    assert review_store.get_image(model.image_id).state == "in_progress"
    assert model.progress().images_reviewed == 0


def test_drawn_box_is_read_by_the_engine_and_starts_unchecked(model, synth_set):
    """Delete a line, draw its true box again: the engine reads the true text into it, unchecked."""
    folder, pages = synth_set
    truth = pages[0].lines[0]
    model.go_to_image(0)
    model.delete(min(model.lines, key=lambda r: render.bounds(r.points)[1]).id)  # the top line
    rid = model.add_region(truth.quad)
    added = by_id(model)[rid]
    assert added.text == truth.text and added.score is not None
    assert model.current.id == rid and model.state_of(added) == "drawn" and not model.done(added)
    model.accept()
    assert model.state_of(by_id(model)[rid]) == "accepted"
    model.undo()
    model.undo()  # one undo takes the whole drawn box back
    assert rid not in by_id(model)


def test_moving_a_box_unchecks_its_text_until_reread_or_accepted(model, review_store):
    region = model.current
    model.accept()
    model.select(region.id)
    assert model.done(model.current)
    model.move_vertex(2, 10_000, 10_000)  # dragged off the page: clamped to the corner
    moved = model.current
    assert moved.id == region.id and moved.points[2] == (model.page.width, model.page.height)
    assert model.state_of(moved) == "moved" and not model.done(moved)
    assert review_store.history(model.image_id)[-1].op == "set_points"
    model.undo()
    assert model.current.points == region.points and model.done(model.current)
    model.nudge(0, -3)  # no corner selected: the whole box moves
    assert all(abs(a[1] - b[1] - 3) < 1e-6 for a, b in zip(region.points, model.current.points))
    model.set_text("garbage")
    assert model.rerecognize() == region.text
    reread = model.current
    expected = model.engine.recognize(model.images.get(model.image_id), [reread.points])[0]
    assert reread.score == expected.score  # the re-read's own score, not the old prediction's
    assert model.done(reread)


def test_polygon_corners_rotation_and_rotated_boxes(model):
    region = model.current
    i = model.add_vertex(after=0)
    pts = model.current.points
    assert len(pts) == 5 and i == 1 and model.vertex == 1
    assert pts[1] == pytest.approx(((region.points[0][0] + region.points[1][0]) / 2, (region.points[0][1] + region.points[1][1]) / 2))
    model.remove_vertex()
    assert model.current.points == region.points
    tri = [region.points[0], region.points[1], region.points[2]]
    model.set_points(tri)
    with pytest.raises(UsageError, match="at least 3"):
        model.remove_vertex(0)
    model.undo()
    model.rotate(90)
    turned = model.current.points
    cx = sum(p[0] for p in region.points) / 4
    assert sum(p[0] for p in turned) / 4 == pytest.approx(cx, abs=0.6)  # about its centre (clamped to the page at most)
    box = rotated_box((10, 10), (110, 110), 20)
    assert box[1] == (110, 110) and np.hypot(box[3][0] - 10, box[3][1] - 10) == pytest.approx(20)
    assert rotated([(0, 0), (2, 0), (2, 2), (0, 2)], 90)[0] == pytest.approx((2, 0))


def test_rereading_every_box_of_an_image(model, review_store):
    garbled = model.lines[:3]
    for r in garbled:
        model.set_text("xx", r.id)
    changed = model.rerecognize_all()
    assert changed == 3 and "3 texts changed" in model.message
    assert [by_id(model)[r.id].text for r in garbled] == [r.text for r in garbled]


def test_browser_commands_drive_the_model(model, review_store):
    """The messages the ES module sends (static/editor.js) map onto the same actions."""
    second = model.lines[1]
    model.handle({"cmd": "select", "region": second.id})
    assert model.current.id == second.id
    model.handle({"cmd": "accept", "region": second.id, "text": "typed then Enter", "version": 0})
    assert by_id(model)[second.id].text == "typed then Enter"
    third = model.lines[2]
    # Two outline commits made on the version the browser saw: the second follows the first.
    p = [list(q) for q in third.points]
    model.handle({"cmd": "points", "region": third.id, "points": [[x + 1, y] for x, y in p], "version": 0})
    model.handle({"cmd": "points", "region": third.id, "points": [[x + 2, y] for x, y in p], "version": 0, "vertex": 1})
    assert model.message_kind == "info" and by_id(model)[third.id].points[0][0] == pytest.approx(p[0][0] + 2)
    assert model.vertex == 1
    model.handle({"cmd": "next_image"})
    assert model.position == 1
    ops = [e.op for e in review_store.history(model.image_ids[0])]
    assert ops == ["set_text", "accept_region", "set_points", "set_points"]
    model.handle({"cmd": "delete", "region": "no-such-line"})
    assert model.message_kind == "error" and "no line" in model.message  # said, not raised


def test_keymap_is_the_one_definition_the_module_and_the_model_share(model):
    """Every command of the key map is done either in the browser (a `case` of editor.js) or by
    the model; the help table is rendered from the same rows."""
    js = EDITOR_JS.read_text()
    local = set(re.search(r"const LOCAL = new Set\(\[(.*?)\]\);", js, re.S).group(1).replace('"', "").replace("\n", "").replace(" ", "").split(","))
    local.discard("")
    cases = set(re.findall(r'case "([a-z_]+)":', js))
    for key in KEYMAP:
        if key.cmd in local:
            assert key.cmd in cases, f"{key.cmd} is local but editor.js has no case for it"
    remote = sorted({k.cmd for k in KEYMAP} - local)
    assert "undo" in remote and "nudge" not in remote
    for cmd in remote:  # each one is an action of the model (an unknown command is said, not done)
        model.handle({"cmd": cmd})
        assert "unknown editor command" not in model.message, cmd
    model.handle({"cmd": "no_such_command"})
    assert "unknown editor command" in model.message
    rows = help_rows()
    assert len(rows) == len(KEYMAP) + len(GESTURES) and all(r[0] and r[1] for r in rows)


def test_readme_lists_every_key_and_gesture():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Review in JupyterLab"): readme.index("## Export and evaluate")]
    for keys, what, _ in help_rows():
        assert keys in section, f"README's editor section does not list {keys!r} ({what})"


def test_another_reviewers_change_is_shown_not_overwritten(model, review_store):
    region = model.current
    seen = model.versions[region.id]
    with Store(review_store.path) as other:  # another notebook, another kernel
        other.set_text(model.image_id, region.id, "their text", who="bob")
    model.handle({"cmd": "accept", "region": region.id, "text": "my text", "version": seen})
    assert model.message_kind == "warn" and "bob" in model.message and "their text" in model.message
    assert by_id(model)[region.id].text == "their text"  # reloaded, not overwritten
    assert [e.who for e in review_store.history(model.image_id)] == ["bob"]
    # Undo is per reviewer: mine has nothing to undo, bob's edit stays.
    model.handle({"cmd": "undo"})
    assert "nothing of yours" in model.message and by_id(model)[region.id].text == "their text"
    # My edit of the line, then bob's on top: my undo would go under bob's work, so it is refused.
    model.accept("mine now", region.id)
    with Store(review_store.path) as other:
        other.set_text(model.image_id, region.id, "bob again", who="bob")
    model.handle({"cmd": "undo"})
    assert model.message_kind == "warn" and "bob" in model.message
    assert by_id(model)[region.id].text == "bob again"


def test_poll_sees_other_reviewers(model, review_store):
    assert model.poll() is False
    with Store(review_store.path) as other:
        other.set_text(model.image_id, model.lines[-1].id, "from elsewhere", who="bob")
    assert model.poll() is True and "changed in the store meanwhile" in model.message
    assert "from elsewhere" in [r.text for r in model.lines]


def test_reopening_resumes_where_each_reviewer_stopped(review_store, engine):
    ids = review_store.image_ids()[:4]
    alice = EditorModel(review_store, ids, who="alice")
    alice.go_to_image(2)
    alice.next_line()
    where = alice.current.id
    bob = EditorModel(review_store, ids, who="bob")
    assert bob.position == 0
    bob.go_to_image(1)
    again = EditorModel(Store(review_store.path), ids, who="alice")  # a restarted kernel
    assert again.image_id == ids[2] and again.current.id == where and "resumed" in again.message
    assert EditorModel(review_store, ids, who="bob").image_id == ids[1]
    assert EditorModel(review_store, ids, who="carol").position == 0


def test_model_needs_images(tmp_path):
    with pytest.raises(UsageError, match="no images"):
        EditorModel(Store(tmp_path / "empty.sqlite"))


# --- crops and validation ----------------------------------------------------------------------


def test_small_crops_are_flagged_by_export_validation_and_the_editor(tmp_path):
    tiny = Region("tiny", ((10, 10), (19, 10), (19, 16), (10, 16)), "11.")  # the 9x6 px box of issue 14
    fine = Region("fine", ((0, 30), (120, 30), (120, 60), (0, 60)), "ok")
    report = validate([("a.png", Page(200, 100, "0" * 64, (tiny, fine)))], Rules(None))
    assert [(i.region_id, i.kind, i.target) for i in report.issues] == [("tiny", "small_crop", "rec")]
    assert crop_size(tiny.points) == (9, 6) and MIN_CROP_HEIGHT > 6
    store = Store(tmp_path / "s.sqlite")
    store.add_page(Page(200, 100, "a" * 64, (tiny, fine), "m"), image_ref=str(tmp_path / "none.png"))
    model = EditorModel(store)
    assert [k for k, _ in model.issues(by_id(model)["tiny"])] == ["small_crop"] and model.issues(by_id(model)["fine"]) == []


def test_crop_size_is_the_size_of_the_crop_the_export_cuts():
    from svtr_label.dataset.samples import crop_lines

    bgr = np.zeros((400, 400, 3), np.uint8)
    shapes = [
        ((0, 0), (9, 0), (9, 6), (0, 6)),  # tiny
        ((50, 20), (60, 20), (60, 300), (50, 300)),  # vertical: turned a quarter
        ((50, 100), (300, 160), (292, 192), (42, 132)),  # rotated
        ((10, 10), (200, 12), (210, 40), (100, 60), (12, 38)),  # a polygon: its minimum-area rectangle
    ]
    for pts in shapes:
        crop = crop_lines(bgr, [Region("r", pts, "x")])[0]
        assert crop_size(pts) == (crop.shape[1], crop.shape[0]), pts


def test_editor_shows_the_crop_the_export_writes_upright(tmp_path, synth_set):
    """A line turned 30 degrees: the editor's crop is pixel for pixel the export's crop_img file."""
    from svtr_label.dataset.formats import ExportOptions, run_export

    folder, pages = synth_set
    synth = pages[1]
    line = synth.lines[0]
    img = synth.image.convert("RGB").rotate(-30, expand=True, fillcolor="white")
    path = tmp_path / "turned.png"
    img.save(path)
    # The line's box, turned with the page about its centre (PIL turns about the centre; expand adds a margin).
    w0, h0 = synth.image.size
    a = np.radians(30)
    c0, c1 = np.array([w0 / 2, h0 / 2]), np.array([img.width / 2, img.height / 2])
    quad = [tuple(c1 + np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ (np.array(p) - c0)) for p in line.quad]
    from svtr_label.core.images import decode_image

    decoded = decode_image(path.read_bytes(), path.name)
    store = Store(tmp_path / "s.sqlite")
    store.add_page(Page(img.width, img.height, decoded.sha256, (Region("r1", tuple(quad), line.text, 0.9),), "m"), image_ref=str(path))
    store.accept_region(store.image_ids()[0], "r1", who="t")
    editor = Editor(store, who="t")
    sent = []
    editor.send = lambda content, buffers=None: sent.append((content, buffers))  # what goes to the browser
    [region] = editor.regions
    editor.send_crops([region["crop"]])
    [(content, [png])] = sent
    shown = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert shown.shape[1] > 3 * shown.shape[0]  # upright: a wide line, not a tilted block
    result = run_export(store, ExportOptions(format="paddleocr", out=tmp_path / "out", val_fraction=0.0, seed=0, rules=Rules(None)))
    [written] = list((result.path / "crop_img").glob("*.png"))
    exported = np.asarray(Image.open(written).convert("RGB"))
    assert exported.shape == shown.shape and np.array_equal(exported, shown)


# --- the editor widget --------------------------------------------------------------------------


def test_editor_widget_state_travels_as_traitlets_and_the_page_once_per_image(review_store, engine):
    editor = Editor(review_store, engine=engine, who="tester")
    sent_images = []
    editor.observe(lambda ch: sent_images.append(len(ch["new"])), names="image")
    assert editor.image[:2] == b"\xff\xd8" and editor.page["width"] == editor.model.page.width
    assert [r["id"] for r in editor.regions] == [r.id for r in editor.model.lines]
    assert editor.current == editor.model.current.id and editor.keymap[0]["cmd"] == "accept"
    assert editor.status["name"] in editor.status["text"] and editor.status["image_id"] == editor.model.image_id
    first = editor.current
    editor.command({"cmd": "accept", "seq": 1, "region": first, "text": "typed", "version": 0})
    editor.command({"cmd": "select", "seq": 2, "region": editor.regions[3]["id"]})
    assert editor.ack == 2 and sent_images == []  # the page is not sent again for actions on it
    row = {r["id"]: r for r in editor.regions}[first]
    assert row["text"] == "typed" and row["state"] == "corrected" and row["checked"] and row["version"] == 2
    editor.command({"cmd": "next_image", "seq": 3})
    assert len(sent_images) == 1 and editor.page["image_id"] == review_store.image_ids()[1]
    editor.command({"cmd": "prev_image", "seq": 4})
    assert len(sent_images) == 2  # back: sent again (the browser keeps one page), from the kernel's cache
    editor.mode = "quad"  # chosen in the browser
    assert editor.model.draw_mode == "quad"
    editor.command({"cmd": "add", "seq": 5, "points": [[10, 10], [120, 12], [118, 44], [9, 40]]})
    assert editor.mode == "" and editor.regions[0]["state"] == "drawn"  # drawn boxes come first: unscored
    assert crop_key(editor.model.image_id, editor.model.current) == editor.regions[0]["crop"]


def test_editor_copes_with_an_empty_page_and_a_missing_file(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    empty = store.add_page(Page(width=300, height=100, sha256="a" * 64, model_version="m"), image_ref=str(tmp_path / "gone.png"))
    editor = Editor(store)
    assert "picture not shown" in editor.message and editor.regions == [] and editor.current == ""
    editor.command({"cmd": "accept", "seq": 1})
    assert "no lines" in editor.message and editor.message_kind == "error" and editor.ack == 1
    editor.command({"cmd": "add", "seq": 2, "points": [[10, 10], [120, 10], [120, 40], [10, 40]]})  # no engine: empty text
    assert len(editor.regions) == 1 and editor.regions[0]["text"] == ""
    editor.command({"cmd": "accept", "seq": 3, "region": editor.current, "text": "typed by hand", "version": editor.regions[0]["version"]})
    assert store.current_page(empty).regions[0].text == "typed by hand"


# --- browser -----------------------------------------------------------------------------------


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


def test_browser_view_shows_thumbnails_follows_the_store_and_opens_the_editor(review_store, engine):
    from svtr_label_widgets.browser import Browser

    browser = Browser(review_store, engine=engine, page_size=4)
    assert len(browser.grid.children) == 4
    assert browser.grid.children[0].children[0].value[:2] == b"\xff\xd8"  # a JPEG thumbnail
    first = browser.model.rows()[0]
    assert f"#{first.id} " in browser.grid.children[0].children[1].value  # the store's number, as the editor shows it
    browser.search.value = "no line says this"
    assert browser.grid.children == () and "0 images" in browser.pager.value
    browser.search.value = ""
    assert browser.poll() is False
    with Store(review_store.path) as other:
        other.set_image_state(first.id, "reviewed", who="bob")
    assert browser.poll() is True and "reviewed 1" in browser.summary.value
    target = browser.model.rows()[2].id
    editor = browser.open_editor(target)
    assert editor.model.image_id == target and editor.model.image_ids == [i.id for i in browser.model.rows()]
    assert editor.status["image_id"] == target


# --- review queue ------------------------------------------------------------------------------


def test_review_queue_sorts_samples_corrects_in_place_and_replaces_with_a_preview(review_store):
    from svtr_label_widgets.queue import QueueModel, ReviewQueue

    q = QueueModel(review_store, who="tester", page_size=10)
    n = sum(len(review_store.current_page(i).regions) for i in review_store.image_ids())
    assert len(q.all_items) == n and q.n_pages() == -(-n // 10)
    scores = [i.region.score for i in q.rows()]
    assert scores == sorted(scores) and len({i.image_id for i in q.visible()}) > 1  # one grid across pages
    q.sort, q.sample_n, q.seed = "audit", 7, 3
    sample = [i.key for i in q.rows()]
    assert len(sample) == 7 and sample == [i.key for i in q.rows()]
    q.seed = 4
    assert [i.key for i in q.rows()] != sample
    q.sort = "score"
    item = q.visible()[0]
    q.accept(item.key, "fixed in the queue")
    fixed = q.find(item.key)
    assert fixed.region.text == "fixed in the queue" and fixed.state == "corrected"
    q.only_unchecked = True
    assert item.key not in [i.key for i in q.rows()]
    # Search and replace: a preview first, nothing written until applied.
    word = next(i.region.text.split()[0] for i in q.all_items if i.region.text.isascii() and i.region.text.strip())
    changes = q.preview(word, "REPLACED")
    assert changes and all(c.after == c.before.replace(word, "REPLACED") for c in changes)
    stored = {(i, r.id): r.text for i in review_store.image_ids() for r in review_store.current_page(i).regions}
    assert all(stored[(c.image_id, c.region_id)] == c.before for c in changes)  # a preview writes nothing
    with Store(review_store.path) as other:  # someone changes one of them after the preview
        other.set_text(changes[0].image_id, changes[0].region_id, "bob's", who="bob")
    done = q.apply(changes)
    assert done.changed == len(changes) - 1 and [by for _, by in done.stale] == ["bob"] and "bob" in done.text()
    assert q.find(f"{changes[0].image_id}/{changes[0].region_id}").region.text == "bob's"
    assert q.preview("[", "x") == []  # literal by default: no line holds a bracket
    with pytest.raises(UsageError, match="regular expression"):
        q.preview("[", "x", regex=True)
    widget = ReviewQueue(review_store, who="tester", page_size=5)
    assert len(widget.items) == 5 and widget.n_pages > 1
    widget.sort = "audit"
    assert widget.total == min(50, len(widget.model.all_items))
    word = next(i.region.text.split()[0] for i in q.all_items if i.region.text.isascii() and i.region.text.strip())
    widget.command({"cmd": "preview", "find": word, "replace": "Q", "seq": 1})
    assert widget.preview and "would change" in widget.message
    widget.command({"cmd": "apply", "seq": 2})
    assert widget.preview == [] and "changed" in widget.message and widget.ack == 2


# --- export panel ------------------------------------------------------------------------------


def test_export_panel_defaults_are_the_clis(tmp_path):
    from svtr_label.cli.main import build_parser
    from svtr_label_widgets.export_panel import ExportChoice

    args = build_parser().parse_args(["export", "in.sqlite", "--format", "paddleocr", "--out", "x"])
    c = ExportChoice()
    assert (c.val_fraction, c.seed, c.on_invalid, c.include_predictions, c.max_text_length) == (
        args.val_fraction, args.seed, args.on_invalid, args.include_predictions, args.max_text_length)
    assert c.dictionary == "" and all(getattr(args, a) is None for a in ("dict", "profile", "rec_model_dir", "train_config"))
    assert "not checked" in c.warning() and ExportChoice(dictionary="bundled").warning() == ""


def test_export_panel_exports_corrected_images_and_lists_invalid_lines_with_text_and_crop(review_store, tmp_path):
    from svtr_label_widgets.export_panel import ExportChoice, ExportPanel, run

    ids = review_store.image_ids()
    for image_id in ids[:4]:
        page = review_store.current_page(image_id)
        review_store.set_text(image_id, page.regions[0].id, "checked", who="t")
    bad = review_store.current_page(ids[0]).regions[1]
    review_store.set_text(ids[0], bad.id, "x" * 500, who="t")  # longer than any recognizer takes
    steps = []
    result = run(review_store, ExportChoice(out=tmp_path / "rec", dictionary="bundled", on_invalid="drop"), lambda p, m: steps.append((p, m)))
    assert result.path is not None and steps[-1][0] == 100
    per_image = [m for _, m in steps if "image" in m and " of " in m]
    assert per_image == [f"writing paddleocr: image {i} of 4" for i in range(1, 5)]  # the 4 corrected images
    assert [p for p, _ in steps] == sorted(p for p, _ in steps)
    assert [i.region_id for i in result.report.issues] == [bad.id]
    assert (result.path / "manifest.json").is_file()

    panel = ExportPanel(review_store, out=tmp_path / "panel")
    assert panel.on_invalid.value == "fail" and "not checked" in panel.warning.value
    panel.dictionary.value = "bundled"
    assert panel.warning.value == ""
    assert panel.export().path is None  # the default: invalid lines fail the export
    assert "nothing written" in panel.result.value
    assert "x" * 500 in panel.issues.value and "data:image/png;base64," in panel.issues.value  # its text and its crop
    assert "too long" in panel.issues.value
    panel.on_invalid.value = "drop"
    panel.export()
    assert str(tmp_path / "panel") in panel.result.value and panel.progress.value == 100
    panel.dictionary.value = str(tmp_path / "missing-dict.txt")
    assert panel.export() is None and "export failed" in panel.result.value
