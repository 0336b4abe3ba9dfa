"""The corrections store on real pipeline pages: edits with history and undo, Label Studio
round trips and webhooks, schema versioning, and a writer killed mid-write."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from svtr_label.labelstudio.format import LabelConfig, page_to_results, recommended_config
from svtr_label.core.page import IGNORE_TEXT, Page, Region
from svtr_label.errors import StoreError
from svtr_label.store import SCHEMA_VERSION, Store, is_store_file

CONFIG = LabelConfig.parse(recommended_config())


# --- helpers other test files import ------------------------------------------------------------


def truth_page(synth_page, image_path: Path) -> Page:
    """The generated page's known lines as a Page of the image file."""
    from svtr_label.core.images import read_image

    img = read_image(image_path)
    regions = tuple(Region(f"t{i}", line.quad, line.text) for i, line in enumerate(synth_page.lines))
    return Page(img.width, img.height, img.sha256, regions, source=str(image_path))


def annotated_task(task_id: int, ref: str, page: Page, ann_id: int, updated_at: str = "2026-01-01T00:00:00Z", who: str = "ann@example.com") -> dict:
    """A Label Studio task as exported, with one annotation holding `page`."""
    return {
        "id": task_id,
        "data": {"image": ref},
        "annotations": [{"id": ann_id, "updated_at": updated_at, "completed_by": {"email": who}, "result": page_to_results(page, CONFIG)}],
    }


def texts(page: Page) -> list[str]:
    return [r.text for r in page.regions]


# --- edits ------------------------------------------------------------------------------------


def test_edits_history_undo_and_listing(tmp_path, synth_set, synth_predictions):
    folder, pages = synth_set
    pred = synth_predictions[0]
    db = tmp_path / "s.db"
    store = Store(db)
    image_id = store.add_page(pred, str(folder / pages[0].name))
    assert store.add_page(pred, str(folder / pages[0].name)) == image_id  # upsert by sha256
    r0, r1, r2, r3 = (r.id for r in pred.regions[:4])

    store.set_text(image_id, r0, "Corrected line", who="alice")
    store.mark_illegible(image_id, r1, who="alice")
    store.delete_region(image_id, r2, who="bob")
    new = Region("new1", ((10, 10), (60, 10), (60, 30), (10, 30)), "added")
    store.add_region(image_id, new, who="bob")
    store.set_points(image_id, r3, [(1, 1), (50, 1), (50, 20), (1, 20)], who="bob")
    store.accept_region(image_id, pred.regions[4].id, who="bob")

    page = store.current_page(image_id)
    by_id = {r.id: r for r in page.regions}
    assert by_id[r0].text == "Corrected line"
    assert by_id[r1].text == IGNORE_TEXT
    assert r2 not in by_id
    assert by_id["new1"].text == "added"
    assert by_id[r3].points == ((1, 1), (50, 1), (50, 20), (1, 20))
    assert len(page.regions) == len(pred.regions)  # one deleted, one added
    assert store.region_states(image_id)[pred.regions[4].id] == "accepted"
    assert store.region_states(image_id)[r0] == "corrected"

    hist = store.history(image_id)
    assert [h.op for h in hist] == ["set_text", "mark_illegible", "delete_region", "add_region", "set_points", "accept_region"]
    assert hist[0].who == "alice" and hist[0].before["text"] == pred.regions[0].text and hist[0].after["text"] == "Corrected line"
    assert hist[2].after is None and hist[3].before is None

    with pytest.raises(StoreError):
        store.set_text(image_id, "no-such-region", "x")

    # Review state, and undo walking back through every kind of edit.
    store.set_image_state(image_id, "reviewed", who="carol")
    info = store.get_image(image_id)
    assert (info.state, info.n_lines, info.model_versions) == ("reviewed", len(pred.regions), (pred.model_version,))
    assert info.min_score == min(r.score for r in page.regions if r.score is not None)
    assert store.undo(image_id).op == "set_state"
    assert store.get_image(image_id).state == "in_progress"  # editing had started the review
    for _ in range(6):
        store.undo(image_id)
    assert store.undo(image_id) is None
    assert store.current_page(image_id) == pred
    assert all(h.undone for h in store.history(image_id))

    # Everything is on disk: a fresh connection sees the same.
    store.set_text(image_id, r0, "after undo", who="alice")
    store.close()
    again = Store(db)
    assert again.current_page(image_id).regions[0].text == "after undo"
    assert again.schema_version == SCHEMA_VERSION and is_store_file(db)
    assert [i.id for i in again.images(state="in_progress")] == [image_id]
    assert again.images(state="reviewed") == []


def test_new_prediction_keeps_corrections_on_their_base(tmp_path, synth_predictions):
    pred = synth_predictions[1]
    store = Store(tmp_path / "s.db")
    image_id = store.add_page(pred, "page.png")
    store.set_text(image_id, pred.regions[0].id, "fixed", who="alice")
    rerun = pred.with_(model_version="other-model@1234", regions=pred.regions[1:])
    store.add_page(rerun, "page.png")
    # The corrected page stays on the prediction it was corrected on; the new one is kept apart.
    assert store.current_page(image_id).regions[0].text == "fixed"
    assert store.current_page(image_id, model_version="other-model@1234") == rerun
    assert set(store.predictions(image_id)) == {pred.model_version, "other-model@1234"}


# --- Label Studio -------------------------------------------------------------------------------


def test_label_studio_round_trip(tmp_path, synth_set, synth_predictions):
    from label_studio_sdk.label_interface import LabelInterface

    folder, pages = synth_set
    store = Store(tmp_path / "a.db")
    ids = [store.add_page(p, str(folder / sp.name)) for p, sp in zip(synth_predictions[:2], pages[:2])]
    store.set_text(ids[0], synth_predictions[0].regions[0].id, "Round trip 1", who="alice")
    store.mark_illegible(ids[0], synth_predictions[0].regions[1].id, who="alice")
    store.set_image_state(ids[1], "reviewed", who="bob")

    tasks = json.loads(json.dumps(store.to_label_studio_tasks()))
    interface = LabelInterface(recommended_config())
    for task in tasks:
        for pred in task["predictions"]:
            assert interface.validate_prediction(pred, return_errors=True) in (True, [])
    assert all(t["annotations"] for t in tasks)

    back = Store(tmp_path / "b.db")
    back.import_label_studio_tasks(tasks)
    for image_id, sp in zip(ids, pages[:2]):
        other = back.find_image(ref=str(folder / sp.name))
        a, b = store.current_page(image_id), back.current_page(other)
        assert texts(b) == texts(a)
        for ra, rb in zip(a.regions, b.regions):
            assert [c for pt in rb.points for c in pt] == pytest.approx([c for pt in ra.points for c in pt], abs=1e-6)
        assert a.model_version in back.predictions(other)
        assert back.get_image(other).sha256 == a.sha256  # hashed from the local file
    assert texts(back.current_page(back.find_image(ref=str(folder / pages[0].name))))[:2] == ["Round trip 1", IGNORE_TEXT]


def two_annotations(synth_set) -> tuple[list, dict]:
    """Task 5 of the third generated page with two annotations: 11 (the truth, newer) and 10 (older, first line "older")."""
    folder, pages = synth_set
    path = folder / pages[2].name
    truth = truth_page(pages[2], path)
    older = truth.with_(regions=(truth.regions[0].with_(text="older"),) + truth.regions[1:])
    task = annotated_task(5, str(path), truth, 11, "2026-02-01T10:00:00Z")
    task["annotations"].append(annotated_task(5, str(path), older, 10, "2026-01-01T10:00:00Z")["annotations"][0])
    return pages, task


def test_import_latest_annotation_wins(tmp_path, synth_set):
    pages, task = two_annotations(synth_set)
    store = Store(tmp_path / "s.db")
    (image_id,) = store.import_label_studio_tasks([task])
    assert texts(store.current_page(image_id)) == [l.text for l in pages[2].lines]
    assert store.get_image(image_id).state == "reviewed"
    assert store.reviewers(image_id) == ["ann@example.com"]
    n_edits = len(store.history(image_id))
    assert store.import_label_studio_tasks([task]) == [image_id]  # importing the same export again
    assert len(store.history(image_id)) == n_edits


def test_annotations_deleted_in_label_studio_leave_the_store_on_the_next_import(tmp_path, synth_set):
    """A pull lists each task with all its annotations: one stored but no longer listed was deleted."""
    pages, both = two_annotations(synth_set)
    store = Store(tmp_path / "s.db")
    (image_id,) = store.import_label_studio_tasks([both])
    assert texts(store.current_page(image_id))[0] == pages[2].lines[0].text
    only_older = {**both, "annotations": [both["annotations"][1]]}  # annotation 11 deleted in Label Studio
    store.import_label_studio_tasks([only_older])
    assert texts(store.current_page(image_id))[0] == "older"
    assert store.task_ids() == {5}
    assert store.forget_deleted_annotations([{**both, "annotations": []}]) == 1  # then the last one too
    assert store.current_page(image_id).regions == ()
    assert store.get_image(image_id).state == "in_progress"


def test_webhook_idempotent_and_out_of_order(tmp_path, synth_set, synth_predictions):
    folder, pages = synth_set
    path, pred = folder / pages[0].name, synth_predictions[0]
    store = Store(tmp_path / "s.db", root=folder)
    image_id = store.add_page(pred, str(path))
    task = {"id": 3, "data": {"image": f"/data/local-files/?d={pages[0].name}"}}  # the same file, as Label Studio names it

    def event(action, ann_id, stamp, first_text):
        page = pred.with_(regions=(pred.regions[0].with_(text=first_text),) + pred.regions[1:])
        ann = {"id": ann_id, "updated_at": stamp, "completed_by": {"email": "w@example.com"}, "result": page_to_results(page, CONFIG)}
        return {"action": action, "task": task, "annotation": ann}

    first = lambda: store.current_page(image_id).regions[0].text  # noqa: E731
    v1 = event("ANNOTATION_CREATED", 1, "2026-03-01T10:00:00Z", "v1")
    v2 = event("ANNOTATION_UPDATED", 1, "2026-03-01T10:05:00Z", "v2")
    assert store.apply_webhook(v1) and first() == "v1"
    assert not store.apply_webhook(v1)  # repeated delivery
    assert store.apply_webhook(v2) and first() == "v2"
    assert not store.apply_webhook(v1)  # late, older event
    n_edits = len(store.history(image_id))

    # A second annotator's older annotation does not beat the newer one.
    assert store.apply_webhook(event("ANNOTATION_CREATED", 2, "2026-03-01T09:00:00Z", "other"))
    assert first() == "v2" and len(store.history(image_id)) == n_edits
    # Deleting the winner falls back to the next one; deleting that restores the prediction.
    assert store.apply_webhook(event("ANNOTATION_DELETED", 1, "2026-03-01T11:00:00Z", "v2"))
    assert first() == "other"
    assert not store.apply_webhook(event("ANNOTATION_DELETED", 1, "2026-03-01T11:00:00Z", "v2"))
    assert store.apply_webhook(event("ANNOTATION_DELETED", 2, "2026-03-01T11:00:00Z", "other"))
    assert first() == pred.regions[0].text
    # An update arriving after its delete stays deleted; a delete seen first blocks the create.
    assert not store.apply_webhook(event("ANNOTATION_UPDATED", 2, "2026-03-01T12:00:00Z", "zombie"))
    assert store.apply_webhook(event("ANNOTATION_DELETED", 9, "2026-03-01T12:00:00Z", "x"))
    assert not store.apply_webhook(event("ANNOTATION_CREATED", 9, "2026-03-01T11:59:00Z", "ghost"))
    assert first() == pred.regions[0].text
    # Label Studio's bulk delete names annotations only.
    assert store.apply_webhook(event("ANNOTATION_CREATED", 12, "2026-03-02T10:00:00Z", "bulk"))
    assert first() == "bulk"
    assert store.apply_webhook({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 12}]})
    assert first() == pred.regions[0].text
    assert not store.apply_webhook({"action": "PROJECT_UPDATED"})


# --- schema -------------------------------------------------------------------------------------


def test_schema_migrates_old_and_refuses_newer(tmp_path):
    old = tmp_path / "old.db"
    sqlite3.connect(old).close()  # an empty file at user_version 0
    assert Store(old).schema_version == SCHEMA_VERSION
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store(newer)


# --- crash safety ---------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from svtr_label.core.page import Page, Region
    from svtr_label.store import Store
    store = Store(sys.argv[1])
    image_id = int(sys.argv[2])
    for n in range(200):
        store.set_text(image_id, "r0", f"text {n}", who="writer")
        print(n, flush=True)
    # One big import: a single transaction, killed before it commits.
    quad = [[10, 10], [90, 10], [90, 40], [10, 40]]
    result = [{"id": "a", "type": "textarea", "from_name": "transcription", "to_name": "image", "original_width": 100,
               "original_height": 50, "value": {"points": quad, "text": ["x"]}}]
    tasks = [{"id": 1000 + i, "data": {"image": f"/nowhere/{i}.png"}, "predictions": [{"model_version": "m", "result": result}]}
             for i in range(20000)]
    print("importing", flush=True)
    store.import_label_studio_tasks(tasks)
    print("imported", flush=True)
    """
)


def test_killed_writer_loses_nothing_committed(tmp_path):
    db = tmp_path / "s.db"
    store = Store(db)
    image_id = store.add_page(Page(100, 50, "f" * 64, (Region("r0", ((0, 0), (10, 0), (10, 5), (0, 5)), "start"),), model_version="m"), "x.png")
    store.close()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(image_id)], stdout=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:  # type: ignore[union-attr]
        seen.append(line.strip())
        if line.strip() == "importing":
            time.sleep(0.3)  # the import takes ~2 s
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    seen += proc.stdout.read().split()  # type: ignore[union-attr]  # anything printed before the kill
    assert "imported" not in seen, "the import finished before the kill: make it bigger"

    store = Store(db)
    assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    edits = [h for h in store.history(image_id) if h.op == "set_text"]
    assert [h.after["text"] for h in edits] == [f"text {n}" for n in range(200)]
    assert store.current_page(image_id).regions[0].text == "text 199"
    assert store.image_ids() == [image_id]  # nothing of the killed import


CONCURRENT = textwrap.dedent(
    """
    import sys
    from svtr_label.store import Store
    store = Store(sys.argv[1])
    for n in range(40):
        store.set_text(int(sys.argv[2]), sys.argv[3], f"{sys.argv[3]} {n}", who=sys.argv[3])
    """
)


def test_two_processes_write_at_once(tmp_path):
    """A notebook and the Label Studio backend write to the same store: writers queue, none is lost."""
    db = tmp_path / "s.db"
    quad = ((0, 0), (10, 0), (10, 5), (0, 5))
    with Store(db) as store:
        image_id = store.add_page(Page(100, 50, "e" * 64, (Region("a", quad, ""), Region("b", quad, "")), model_version="m"), "x.png")
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(db), str(image_id), rid]) for rid in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with Store(db) as store:
        hist = store.history(image_id)
        assert sorted(h.after["text"] for h in hist) == sorted(f"{r} {n}" for r in "ab" for n in range(40))
        assert texts(store.current_page(image_id)) == ["a 39", "b 39"]


def _webhook(ref, results, ann_id=1):
    ann = {"id": ann_id, "updated_at": "2026-03-01T10:00:00Z", "result": results}
    return {"action": "ANNOTATION_CREATED", "task": {"id": 9, "data": {"image": ref}}, "annotation": ann}


def test_webhook_for_an_uploaded_image_takes_its_size_from_the_annotation(tmp_path, synth_predictions):
    """Label Studio's webhook task has no results; the size comes from the event's annotation."""
    page = synth_predictions[0]
    store = Store(tmp_path / "s.db")
    assert store.apply_webhook(_webhook("/data/upload/1/abc-page.png", page_to_results(page, CONFIG)))
    (info,) = [store.get_image(i) for i in store.image_ids()]
    assert (info.width, info.height) == (page.width, page.height)
    assert [r.text for r in store.current_page(info.id).regions] == [r.text for r in page.regions]


def test_webhook_refs_cannot_make_the_store_read_files_outside_the_document_root(tmp_path, synth_set, synth_predictions):
    folder, pages = synth_set
    root = tmp_path / "root"
    (root / "inside").mkdir(parents=True)
    (root / "inside" / "p.png").write_bytes((folder / pages[0].name).read_bytes())
    outside = tmp_path / "secret.png"
    outside.write_bytes((folder / pages[0].name).read_bytes())
    results = page_to_results(synth_predictions[0], CONFIG)
    store = Store(tmp_path / "s.db", root=root)
    for i, ref in enumerate([str(outside), f"file://{outside}", "/data/local-files/?d=../secret.png"]):
        with pytest.raises(StoreError, match="refused"):
            store.apply_webhook(_webhook(ref, results, ann_id=10 + i))
        assert store.find_image(ref=ref) is None, ref  # nothing stored that an export would read later
    store.apply_webhook(_webhook("/data/local-files/?d=inside/p.png", results, ann_id=20))
    assert store.get_image(store.find_image(ref="/data/local-files/?d=inside/p.png")).sha256 == synth_predictions[0].sha256


# --- listing ------------------------------------------------------------------------------------


def _page(key: str, version: str, lines: list[str], scores: list[float | None]) -> Page:
    regions = tuple(Region(f"{key}{i}", ((0, 10 * i), (40, 10 * i), (40, 10 * i + 8), (0, 10 * i + 8)), text, score)
                    for i, (text, score) in enumerate(zip(lines, scores)))
    return Page(200, 100, key * 64, regions, model_version=version)


def test_listing_reads_in_bulk_and_matches_get_image(tmp_path):
    store = Store(tmp_path / "s.db")
    a = store.add_page(_page("a", "m1", ["a0", "a1", "a2"], [0.9, 0.5, 0.8]), "a.png")
    store.set_text(a, "a0", "fixed", who="alice")
    store.delete_region(a, "a1", who="alice")  # the lowest score goes
    store.add_region(a, Region("new", ((0, 0), (9, 0), (9, 9), (0, 9)), "added"), who="bob")
    store.set_text(a, "a2", "undone", who="bob")
    store.undo(a)
    store.add_page(_page("a", "m2", ["x"], [0.1]), "a.png")  # a later run: a's edits stay on m1
    b = store.add_page(_page("b", "m1", ["b0"], [0.3]), "b.png")
    store.add_page(_page("b", "m2", ["b0", "b1"], [0.6, 0.2]), "b.png")  # never edited: the latest shows
    c = store.add_page(_page("c", "m1", ["c0"], [0.7]), "c.png")
    store.set_text(c, "c0", "gone")
    store.undo(c)  # every edit undone: c is pinned to no version until its next edit
    store.add_page(_page("c", "m2", ["c0", "c1"], [0.4, 0.95]), "c.png")
    store.set_image_state(c, "reviewed", who="carol")
    d = store.add_page(_page("d", "m1", ["d0"], [0.99]), "d.png")
    store.set_image_state(d, "reviewed")
    store.undo(d)
    annotated = _page("e", "", ["e0", "e1"], [None, None])
    task = annotated_task(7, "/nowhere/e.png", annotated, ann_id=3)
    task["predictions"] = [{"model_version": "ls-model", "result": page_to_results(_page("e", "", ["p0"], [0.6]), CONFIG)}]
    (e,) = store.import_label_studio_tasks([task])
    assert store.apply_webhook(_webhook("/data/upload/1/f.png", page_to_results(_page("f", "", ["f0"], [0.5]), CONFIG), ann_id=4))
    f = store.find_image(ref="/data/upload/1/f.png")  # an image with an annotation and no prediction

    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)
    listed = store.images()
    store._conn.set_trace_callback(None)
    expected = [store.get_image(i) for i in store.image_ids()]
    assert listed == expected
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert 0 < len(selects) <= 4, selects  # a few bulk queries, not several per image

    by_id = {i.id: i for i in listed}
    assert (by_id[a].n_lines, by_id[a].min_score, by_id[a].n_edits, by_id[a].model_versions) == (3, 0.8, 3, ("m1", "m2"))
    assert by_id[a].state == "in_progress"
    assert (by_id[b].n_lines, by_id[b].min_score, by_id[b].n_edits, by_id[b].state) == (2, 0.2, 0, "unreviewed")
    assert (by_id[c].n_lines, by_id[c].min_score, by_id[c].state) == (2, 0.4, "reviewed")
    assert (by_id[d].state, by_id[d].n_edits) == ("unreviewed", 0)
    assert (by_id[e].state, by_id[e].n_lines, by_id[e].n_edits, by_id[e].model_versions) == ("reviewed", 2, 1, ("ls-model",))
    assert (by_id[f].n_lines, by_id[f].model_versions, by_id[f].ls_task_id) == (1, (), 9)

    assert [i.id for i in store.images(state="reviewed")] == [c, e, f]
    assert store.images(max_score=0.4) == [i for i in expected if i.min_score is not None and i.min_score <= 0.4]
    assert {i.id for i in store.images(max_score=0.4)} >= {b, c}
    by_score = store.images(sort="score")
    assert by_score == sorted(expected, key=lambda i: (i.min_score if i.min_score is not None else 2.0, i.id))
    assert by_score[0].id == b
    assert store.images(state="in_progress", max_score=0.85, sort="score") == [by_id[a]]


def test_import_skips_predictions_listed_as_ids(tmp_path):
    """Label Studio's JSON export lists a task's predictions as ids: nothing to import from those."""
    page = _page("g", "m1", ["g0"], [0.5])
    tasks = [
        {"id": 4, "data": {"image": "/nowhere/g.png"}, "predictions": [17, {"model_version": "m1", "result": page_to_results(page, CONFIG)}]},
        annotated_task(5, "/nowhere/h.png", _page("h", "", ["h0"], [None]), ann_id=8),
    ]
    tasks[1]["predictions"] = [18, 19]  # the size comes from the annotation
    store = Store(tmp_path / "s.db")
    g, h = store.import_label_studio_tasks(tasks)
    assert list(store.predictions(g)) == ["m1"] and texts(store.current_page(g)) == ["g0"]
    assert store.predictions(h) == {} and texts(store.current_page(h)) == ["h0"]


def _open_and_write(path: str, barrier, errors) -> None:
    """A process (a gunicorn worker on its first webhook) opening a store file and writing at once."""
    try:
        barrier.wait()
        with Store(path) as store:
            for k in range(5):
                store.add_page(Page(100, 50, f"sha-{path[-12:]}-{k}", model_version="m"))
    except Exception as exc:  # reported to the parent: a failure in a child would pass unseen
        errors.put(repr(exc))


def test_processes_opening_a_new_store_at_once_all_get_in(tmp_path):
    """Switching a new file to WAL takes a lock SQLite's busy timeout does not wait for: the
    second of two gunicorn workers opening the store at once got "database is locked" (a 500)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for trial in range(6):
        path = str(tmp_path / f"s{trial}.sqlite")
        barrier, errors = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open_and_write, args=(path, barrier, errors)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert errors.empty(), errors.get()
        with Store(path) as store:
            assert len(store.image_ids()) == 5  # the same five pages from four writers: once each
