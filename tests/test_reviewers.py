"""Several reviewers on one store file (issue 14): each reviewer is its own `Store` connection (two
notebooks, or JupyterHub users), or its own process. A stale edit is refused and names who changed
the line; undo and redo are per reviewer and never go over someone else's later change; the
store's revision tells a browser when to re-read; region states tell accepted from corrected."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3

import pytest

from svtr_label.core.page import IGNORE_TEXT, Page, Region
from svtr_label.errors import StaleEdit, StoreError
from svtr_label.store import SCHEMA_VERSION, Store
from svtr_label.store.schema import MIGRATIONS

QUAD = ((0, 0), (40, 0), (40, 8), (0, 8))
MOVED = ((2, 1), (42, 1), (42, 9), (2, 9))
PAGE = Page(200, 100, "c" * 64, tuple(Region(f"r{i}", QUAD, f"line {i}", 0.5 + i / 10) for i in range(4)), model_version="m1")


@pytest.fixture()
def db(tmp_path) -> str:
    path = str(tmp_path / "shared.sqlite")
    with Store(path) as store:
        store.add_page(PAGE, "page.png")
    return path


@pytest.fixture()
def alice(db):
    with Store(db) as store:
        yield store


@pytest.fixture()
def bob(db):
    with Store(db) as store:
        yield store


def snapshot(store: Store, image_id: int = 1) -> tuple:
    """Everything a refused edit must leave as it was."""
    return (store.current_page(image_id), store.region_versions(image_id), store.history(image_id), store.revision(),
            store.get_image(image_id), store.region_states(image_id))


def texts(store: Store, image_id: int = 1) -> dict[str, str]:
    return {r.id: r.text for r in store.current_page(image_id).regions}


# --- versions and stale edits ------------------------------------------------------------------


def test_versions_start_at_zero_and_grow_with_every_change_of_their_region(alice, bob):
    assert alice.region_versions(1) == {"r0": 0, "r1": 0, "r2": 0, "r3": 0}
    alice.set_text(1, "r0", "a", who="alice", expected_version=0)
    bob.accept_region(1, "r0", who="bob", expected_version=1)
    alice.set_points(1, "r1", MOVED, who="alice")
    assert bob.region_versions(1) == {"r0": 2, "r1": 1, "r2": 0, "r3": 0}
    alice.undo(1, "alice")  # an undo changes r1 back: a change too
    bob.redo(1, "bob")  # nothing of bob's undone: changes nothing
    assert bob.region_versions(1)["r1"] == 2
    alice.redo(1, "alice")
    page, versions = bob.page_and_versions(1)
    assert versions["r1"] == 3 and {r.id: r.points for r in page.regions}["r1"] == MOVED
    alice.add_region(1, Region("drawn", QUAD, "new"), who="alice")
    bob.delete_region(1, "r3", who="bob", expected_version=0)
    assert bob.region_versions(1) == {"r0": 2, "r1": 3, "r2": 0, "drawn": 1}  # a deleted line is no longer listed


@pytest.mark.parametrize("method, args", [
    ("set_text", ("alice's text",)), ("set_points", (MOVED,)), ("accept_region", ()), ("mark_illegible", ()), ("delete_region", ()),
])
def test_an_edit_on_a_stale_version_is_refused_and_changes_nothing(alice, bob, method, args):
    seen = alice.region_versions(1)["r2"]  # alice loads the page
    bob.set_text(1, "r2", "bob's text", who="bob", expected_version=seen)  # bob edits the same line first
    before = snapshot(bob)
    with pytest.raises(StaleEdit) as caught:
        getattr(alice, method)(1, "r2", *args, who="alice", expected_version=seen)
    err = caught.value
    assert snapshot(bob) == before
    assert isinstance(err, StoreError)
    assert (err.image_id, err.region_id, err.by, err.version) == (1, "r2", "bob", 1)
    assert err.current.text == "bob's text"
    assert err.at == bob.history(1)[-1].at
    assert "reload the line: bob changed it at " + err.at in str(err)
    getattr(alice, method)(1, "r2", *args, who="alice", expected_version=err.version)  # after reloading: accepted
    assert alice.history(1)[-1].who == "alice"


def test_an_edit_on_a_line_deleted_meanwhile_names_the_deletion(alice, bob):
    bob.delete_region(1, "r1", who="bob")
    with pytest.raises(StaleEdit, match="bob changed it") as caught:
        alice.set_text(1, "r1", "too late", who="alice", expected_version=0)
    assert caught.value.current is None and caught.value.version == 1
    with pytest.raises(StoreError, match="no region"):  # without a version: the old error, not StaleEdit
        alice.set_text(1, "r1", "too late", who="alice")
    alice.set_text(1, "r2", "no version given: written as before", who="alice")
    assert texts(bob)["r2"] == "no version given: written as before"


def _edit_at_version(path: str, who: str, version: int, barrier, results) -> None:
    """A reviewer in its own process: waits until every reviewer has read the same version, then
    edits the same line on it. Reports "ok" or the StaleEdit itself (it must pickle whole)."""
    try:
        with Store(path) as store:
            barrier.wait()
            try:
                store.set_text(1, "r0", f"by {who}", who=who, expected_version=version)
                results.put((who, "ok"))
            except StaleEdit as exc:
                results.put((who, exc))
    except Exception as exc:  # reported to the parent: a failure in a child would pass unseen
        results.put((who, repr(exc)))


def test_processes_editing_one_line_on_one_version_exactly_one_wins(db):
    """The version check and the write are one transaction: of reviewers in separate processes
    released at once onto the same version, one writes and every other gets StaleEdit."""
    ctx = multiprocessing.get_context("fork")
    with Store(db) as store:
        for trial in range(5):
            version = store.region_versions(1)["r0"]
            barrier, results = ctx.Barrier(4), ctx.Queue()
            names = [f"p{trial}-{k}" for k in range(4)]
            procs = [ctx.Process(target=_edit_at_version, args=(db, who, version, barrier, results)) for who in names]
            for p in procs:
                p.start()
            outcome = dict(results.get(timeout=60) for _ in procs)
            for p in procs:
                p.join(60)
            winners = [who for who, r in outcome.items() if r == "ok"]
            assert len(winners) == 1, outcome
            losers = [r for r in outcome.values() if r != "ok"]
            assert all(isinstance(r, StaleEdit) and r.by == winners[0] and r.version == version + 1 for r in losers), outcome
            assert texts(store)["r0"] == f"by {winners[0]}"
            assert store.region_versions(1)["r0"] == version + 1
        assert len(store.history(1)) == 5  # one edit per trial, no lost or doubled write


# --- undo and redo per reviewer ------------------------------------------------------------------


def test_undo_and_redo_are_per_reviewer_with_interleaved_edits(alice, bob):
    alice.set_text(1, "r0", "a1", who="alice")
    bob.set_text(1, "r1", "b1", who="bob")
    alice.set_text(1, "r2", "a2", who="alice")
    bob.mark_illegible(1, "r3", who="bob")
    # alice's undo takes her own latest edit, not bob's later one.
    undone = alice.undo(1, "alice")
    assert (undone.who, undone.region_id, undone.undone) == ("alice", "r2", True)
    assert texts(bob) == {"r0": "a1", "r1": "b1", "r2": "line 2", "r3": IGNORE_TEXT}
    assert bob.undo(1, "bob").region_id == "r3"
    assert alice.undo(1, "alice").region_id == "r0"
    assert alice.undo(1, "alice") is None  # nothing of alice's left; bob's r1 stays
    assert texts(alice) == {"r0": "line 0", "r1": "b1", "r2": "line 2", "r3": "line 3"}
    # Redo walks back in the reverse order of each reviewer's undos.
    assert alice.redo(1, "alice").region_id == "r0"
    assert bob.redo(1, "bob").region_id == "r3"
    assert alice.redo(1, "alice").region_id == "r2"
    assert alice.redo(1, "alice") is None and bob.redo(1, "bob") is None
    assert texts(alice) == {"r0": "a1", "r1": "b1", "r2": "a2", "r3": IGNORE_TEXT}
    # A new edit clears the reviewer's own redo on that image only, not another reviewer's.
    alice.undo(1, "alice")
    bob.undo(1, "bob")
    alice.accept_region(1, "r0", who="alice")
    assert alice.redo(1, "alice") is None
    assert bob.redo(1, "bob").region_id == "r3"
    assert [(e.who, e.region_id) for e in alice.history(1) if not e.undone] == [("alice", "r0"), ("bob", "r1"), ("bob", "r3"), ("alice", "r0")]


def test_undo_and_redo_of_a_review_state(alice, bob):
    alice.set_image_state(1, "reviewed", who="alice")
    bob.set_text(1, "r0", "b", who="bob")
    assert alice.undo(1, "alice").op == "set_state"
    assert bob.get_image(1).state == "unreviewed"
    assert alice.redo(1, "alice").op == "set_state"
    assert bob.get_image(1).state == "reviewed"
    bob.set_image_state(1, "in_progress", who="bob")
    with pytest.raises(StaleEdit, match="review state: reload the line: bob changed it"):
        alice.undo(1, "alice")


def test_undo_is_refused_over_another_reviewers_later_edit_of_the_line(alice, bob):
    alice.set_text(1, "r0", "alice's", who="alice")
    bob.set_text(1, "r0", "bob's on top", who="bob")
    before = snapshot(alice)
    with pytest.raises(StaleEdit) as caught:
        alice.undo(1, "alice")
    assert snapshot(alice) == before
    err = caught.value
    assert (err.region_id, err.by, err.current.text) == ("r0", "bob", "bob's on top")
    assert "cannot undo alice's set_text of line 'r0': reload the line: bob changed it at" in str(err)
    # Once bob takes his edit back, alice's undo goes through.
    bob.undo(1, "bob")
    alice.undo(1, "alice")
    assert texts(bob)["r0"] == "line 0"
    # Redo is refused the same way: bob edited the line after alice undid hers.
    alice.set_text(1, "r1", "alice's", who="alice")
    alice.undo(1, "alice")
    bob.delete_region(1, "r1", who="bob")
    with pytest.raises(StaleEdit, match="cannot redo alice's set_text of line 'r1'") as caught:
        alice.redo(1, "alice")
    assert caught.value.current is None
    assert "r1" not in texts(alice)


def test_undo_without_a_reviewer_still_takes_the_images_last_edit(alice, bob):
    alice.set_text(1, "r0", "a", who="alice")
    bob.set_text(1, "r0", "b", who="bob")
    assert alice.undo(1).who == "bob"  # the single-reviewer undo of before: whoever edited last
    assert alice.undo(1).who == "alice"
    assert alice.undo(1) is None
    assert bob.redo(1, "bob").who == "bob"  # what it undid can still be redone by its author
    assert texts(alice)["r0"] == "b"


# --- revision ------------------------------------------------------------------------------------


def test_revision_grows_with_every_write_from_any_connection(alice, bob, tmp_path):
    start = bob.revision()
    alice.set_text(1, "r0", "x", who="alice")
    assert bob.revision() == start + 1  # seen by the other connection without reopening
    bob.add_page(PAGE.with_(sha256="d" * 64), "other.png")
    alice.undo(1, "alice")
    alice.set_image_state(2, "reviewed", who="alice")
    assert alice.revision() == bob.revision() == start + 4
    # Reads, refused edits and a redo with nothing to redo write nothing: no refresh.
    bob.images()
    bob.redo(1, "bob")
    with pytest.raises(StaleEdit):
        bob.set_text(1, "r0", "stale", who="bob", expected_version=0)
    assert bob.revision() == start + 4
    with Store(bob.path) as third:
        assert third.revision() == start + 4


# --- region states --------------------------------------------------------------------------------


def test_states_tell_accepted_from_corrected_and_a_move_unchecks(alice, bob):
    alice.accept_region(1, "r0", who="alice")  # confirmed as predicted
    alice.set_text(1, "r1", "typed", who="alice")
    alice.accept_region(1, "r1", who="alice")  # confirmed after changing it
    bob.mark_illegible(1, "r2", who="bob")
    assert bob.region_states(1) == {"r0": "accepted", "r1": "corrected", "r2": "corrected"}
    info = bob.get_image(1)
    assert (info.n_accepted, info.n_corrected, info.n_edits) == (1, 2, 4)
    # Moving a box unchecks its text until re-read or accepted.
    bob.set_points(1, "r0", MOVED, who="bob")
    bob.set_points(1, "r1", MOVED, who="bob")
    assert bob.region_states(1) == {"r2": "corrected"}
    assert (bob.get_image(1).n_accepted, bob.get_image(1).n_corrected) == (0, 1)
    bob.set_text(1, "r0", "line 0", who="bob", score=0.97)  # re-read: the predicted text again
    bob.set_text(1, "r1", "read anew", who="bob", score=0.8)
    assert bob.region_states(1) == {"r0": "accepted", "r1": "corrected", "r2": "corrected"}
    # A drawn box starts unchecked; accepting its engine-read text makes it accepted.
    bob.add_region(1, Region("drawn", QUAD, "read by the engine", 0.6), who="bob")
    assert "drawn" not in alice.region_states(1)
    alice.accept_region(1, "drawn", who="alice")
    assert alice.region_states(1)["drawn"] == "accepted"
    # The browser's listing holds the same counts as get_image, and the export's notion of a
    # corrected image (any edit) is unchanged.
    assert [i for i in alice.images() if i.id == 1] == [alice.get_image(1)]
    assert alice.is_corrected(1)


# --- migration ------------------------------------------------------------------------------------


def _old_store(path: str) -> None:
    """A store file as svtr-label wrote it at schema version 1: two edits (one undone), a page
    replaced by a Label Studio annotation, and a state change."""
    conn = sqlite3.connect(path)
    conn.execute("BEGIN")
    MIGRATIONS[0](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO images (id, sha256, ref, width, height, state, added_at) VALUES (1, ?, 'page.png', 200, 100, 'in_progress', 't0')",
                 (PAGE.sha256,))
    conn.execute("INSERT INTO predictions (image_id, model_version, page, created_at) VALUES (1, 'm1', ?, 't0')", (json.dumps(PAGE.to_dict()),))
    r0 = PAGE.regions[0].to_dict()
    rows = [
        ("r0", "set_text", r0, {**r0, "text": "old edit"}, "alice", "t1", 0),
        ("r0", "set_text", {**r0, "text": "old edit"}, {**r0, "text": "undone"}, "alice", "t2", 1),
        ("r1", "accept_region", PAGE.regions[1].to_dict(), PAGE.regions[1].to_dict(), "bob", "t3", 0),
        (None, "set_state", "unreviewed", "in_progress", "bob", "t4", 0),
    ]
    for region_id, op, before, after, who, at, undone in rows:
        conn.execute("INSERT INTO edits (image_id, region_id, op, before, after, who, at, base_version, undone) VALUES (1, ?, ?, ?, ?, ?, ?, 'm1', ?)",
                     (region_id, op, json.dumps(before), json.dumps(after), who, at, undone))
    conn.execute("COMMIT")
    conn.close()


def test_a_version_1_store_migrates_with_versions_undo_and_revision(tmp_path):
    path = str(tmp_path / "old.sqlite")
    _old_store(path)
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 2
        assert texts(store)["r0"] == "old edit"
        assert store.region_states(1) == {"r0": "corrected", "r1": "accepted"}
        # Backfilled: r0 had two edits and one undo, r1 one edit; untouched lines are at 0.
        assert store.region_versions(1) == {"r0": 3, "r1": 1, "r2": 0, "r3": 0}
        with pytest.raises(StaleEdit, match="alice changed it at t2"):
            store.set_text(1, "r0", "x", who="bob", expected_version=2)
        assert store.redo(1, "alice") is None  # an undo from before the migration is not redoable
        revision = store.revision()
        assert store.undo(1, "alice").after["text"] == "old edit"
        assert store.revision() == revision + 1
        assert store.redo(1, "alice").region_id == "r0"
    with Store(path) as again:  # opening a migrated file again changes nothing
        assert again.schema_version == 2 and again.region_versions(1)["r0"] == 5
