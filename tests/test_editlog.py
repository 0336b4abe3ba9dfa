"""The edit log's rules without SQLite: replaying each op over a page, undone edits skipped,
region review states, and which prediction version the edits are pinned to."""

from __future__ import annotations

import itertools
import json

import pytest

from svtr_label.core.page import IGNORE_TEXT, Page, Region
from svtr_label.store import IMAGE_STATES, EditOp, RegionState, ReviewState
from svtr_label.store.editlog import (
    Edit,
    LoggedEdit,
    base_version,
    blocking_edit,
    count_page_edits,
    edits_for,
    live,
    region_states,
    replay,
    replays_edits,
    shown_version,
    touched_regions,
    version_to_pin,
)

QUAD = ((0, 0), (10, 0), (10, 5), (0, 5))
PAGE = Page(100, 50, "a" * 64, (Region("r0", QUAD, "zero", 0.9), Region("r1", QUAD, "one", 0.8), Region("r2", QUAD, "two", 0.7)),
            model_version="m1")
_ids = itertools.count(1)


def edit(op: EditOp, region_id: str | None = None, before=None, after=None, undone: bool = False, who: str = "alice") -> Edit:
    return Edit(next(_ids), 1, region_id, op, before, after, who, "2026-01-01T00:00:00+00:00", undone)


def region(page: Page, region_id: str) -> Region:
    return next(r for r in page.regions if r.id == region_id)


def changed(region_id: str, **changes) -> dict:
    return region(PAGE, region_id).with_(**changes).to_dict()


# --- enums ------------------------------------------------------------------------------------


def test_enums_are_the_strings_the_store_and_widgets_use():
    assert IMAGE_STATES == ("unreviewed", "in_progress", "reviewed")
    assert ReviewState.IN_PROGRESS == "in_progress" and f"{ReviewState.IN_PROGRESS}" == "in_progress"
    assert {RegionState.ACCEPTED: 1}.get("accepted") == 1  # a dict keyed by members answers plain strings
    assert json.dumps([EditOp.SET_TEXT]) == '["set_text"]'
    assert EditOp("delete_region") is EditOp.DELETE_REGION
    assert EditOp.SET_STATE.replace("_", " ") == "set state"


# --- replay -----------------------------------------------------------------------------------


def test_no_edits_gives_the_prediction():
    assert replay(PAGE, []) == PAGE


@pytest.mark.parametrize(
    "op, after, expected_text",
    [(EditOp.SET_TEXT, changed("r1", text="fixed"), "fixed"), (EditOp.MARK_ILLEGIBLE, changed("r1", text=IGNORE_TEXT), IGNORE_TEXT),
     (EditOp.ACCEPT_REGION, changed("r1"), "one")],
)
def test_region_edits_change_the_region_in_place(op, after, expected_text):
    page = replay(PAGE, [edit(op, "r1", changed("r1"), after)])
    assert [r.id for r in page.regions] == ["r0", "r1", "r2"]  # the edited region keeps its place
    assert region(page, "r1").text == expected_text
    assert page.model_version == "m1" and page.sha256 == PAGE.sha256


def test_set_points_moves_the_region():
    points = ((1, 1), (50, 1), (50, 20), (1, 20))
    page = replay(PAGE, [edit(EditOp.SET_POINTS, "r2", changed("r2"), changed("r2", points=points))])
    assert region(page, "r2").points == points


def test_delete_and_add_region():
    new = Region("n1", QUAD, "added")
    page = replay(PAGE, [edit(EditOp.DELETE_REGION, "r0", changed("r0"), None), edit(EditOp.ADD_REGION, "n1", None, new.to_dict())])
    assert [r.id for r in page.regions] == ["r1", "r2", "n1"]  # an added region goes last
    assert region(page, "n1") == new


def test_replace_swaps_the_whole_page_and_later_edits_apply_on_top():
    annotated = [Region("a", QUAD, "from Label Studio").to_dict()]
    edits = [edit(EditOp.SET_TEXT, "r0", changed("r0"), changed("r0", text="lost")),
             edit(EditOp.REPLACE, None, [r.to_dict() for r in PAGE.regions], annotated),
             edit(EditOp.SET_TEXT, "a", annotated[0], {**annotated[0], "text": "after"})]
    page = replay(PAGE, edits)
    assert [(r.id, r.text) for r in page.regions] == [("a", "after")]
    assert replay(PAGE, [edit(EditOp.REPLACE, None, [], None)]).regions == ()


def test_edits_replay_in_order():
    edits = [edit(EditOp.SET_TEXT, "r0", None, changed("r0", text=t)) for t in ("first", "second", "third")]
    assert region(replay(PAGE, edits), "r0").text == "third"


def test_undone_and_state_edits_change_no_region():
    edits = [edit(EditOp.SET_TEXT, "r0", changed("r0"), changed("r0", text="kept")),
             edit(EditOp.SET_TEXT, "r0", changed("r0", text="kept"), changed("r0", text="undone"), undone=True),
             edit(EditOp.DELETE_REGION, "r1", changed("r1"), None, undone=True),
             edit(EditOp.SET_STATE, None, "in_progress", "reviewed")]
    page = replay(PAGE, edits)
    assert [r.text for r in page.regions] == ["kept", "one", "two"]
    assert [e.id for e in live(edits)] == [edits[0].id, edits[3].id]
    assert count_page_edits(edits) == 1  # neither undone edits nor state changes count


# --- region states ----------------------------------------------------------------------------


def test_region_states_follow_the_live_edits_of_each_region():
    edits = [edit(EditOp.ACCEPT_REGION, "r0", changed("r0"), changed("r0")),
             edit(EditOp.SET_TEXT, "r1", changed("r1"), changed("r1", text="x")),
             edit(EditOp.ACCEPT_REGION, "r1", changed("r1", text="x"), changed("r1", text="x")),
             edit(EditOp.MARK_ILLEGIBLE, "r2", changed("r2"), changed("r2", text=IGNORE_TEXT), undone=True),
             edit(EditOp.ADD_REGION, "n1", None, Region("n1", QUAD, "new").to_dict()),
             edit(EditOp.SET_STATE, None, "unreviewed", "reviewed")]
    states = region_states(edits)
    # r1's text was changed, then confirmed: corrected, not accepted; the drawn n1 is unchecked (absent).
    assert states == {"r0": RegionState.ACCEPTED, "r1": RegionState.CORRECTED}
    assert region_states(edits + [edit(EditOp.DELETE_REGION, "r0", changed("r0"), None)]) == {"r1": "corrected"}
    assert region_states(edits + [edit(EditOp.ACCEPT_REGION, "n1", Region("n1", QUAD, "new").to_dict(), Region("n1", QUAD, "new").to_dict())])["n1"] == "accepted"
    assert region_states([edit(EditOp.MARK_ILLEGIBLE, "r2", changed("r2"), changed("r2", text=IGNORE_TEXT))]) == {"r2": "corrected"}


MOVED = ((1, 1), (50, 1), (50, 20), (1, 20))


def test_moving_a_box_unchecks_its_text_until_reread_or_accepted():
    accepted = edit(EditOp.ACCEPT_REGION, "r0", changed("r0"), changed("r0"))
    moved = edit(EditOp.SET_POINTS, "r0", changed("r0"), changed("r0", points=MOVED))
    assert region_states([moved]) == {}  # a moved prediction: still unchecked
    assert region_states([accepted, moved]) == {}  # the accepted text was read from the old box
    assert region_states([accepted, moved, edit(EditOp.ACCEPT_REGION, "r0", changed("r0", points=MOVED), changed("r0", points=MOVED))]) == {"r0": "accepted"}
    same = edit(EditOp.SET_TEXT, "r0", changed("r0", points=MOVED), changed("r0", points=MOVED, score=0.95))
    other = edit(EditOp.SET_TEXT, "r0", changed("r0", points=MOVED), changed("r0", points=MOVED, text="zer0", score=0.6))
    assert region_states([accepted, moved, same]) == {"r0": "accepted"}  # re-read, same text as predicted
    assert region_states([accepted, moved, other]) == {"r0": "corrected"}  # re-read to another text
    typed = edit(EditOp.SET_TEXT, "r0", changed("r0"), changed("r0", text="typed"))
    assert region_states([typed, moved]) == {}  # even a typed text is unchecked once its box moves
    assert region_states([typed, moved, edit(EditOp.ACCEPT_REGION, "r0", None, changed("r0", text="typed"))]) == {"r0": "corrected"}
    # Typing the predicted text back is what was predicted: accepted.
    back = edit(EditOp.SET_TEXT, "r0", changed("r0", text="typed"), changed("r0"))
    assert region_states([typed, back]) == {"r0": "accepted"}
    assert region_states([typed, edit(EditOp.SET_TEXT, "r0", None, None, undone=True)]) == {"r0": "corrected"}


def test_a_drawn_box_starts_unchecked():
    drawn = Region("n1", QUAD, "read by the engine", 0.7).to_dict()
    add = edit(EditOp.ADD_REGION, "n1", None, drawn)
    assert region_states([add]) == {}
    assert region_states([add, edit(EditOp.SET_TEXT, "n1", drawn, {**drawn, "text": "fixed"})]) == {"n1": "corrected"}
    assert region_states([add, edit(EditOp.SET_POINTS, "n1", drawn, {**drawn, "points": MOVED})]) == {}


def test_a_replaced_page_is_corrected_throughout():
    edits = [edit(EditOp.ACCEPT_REGION, "r0", changed("r0"), changed("r0")),
             edit(EditOp.REPLACE, None, [], [Region("a", QUAD, "x").to_dict(), Region("b", QUAD, "y").to_dict()])]
    assert region_states(edits) == {"a": "corrected", "b": "corrected"}
    assert region_states([edit(EditOp.REPLACE, None, [], None)]) == {}
    assert region_states([]) == {}


# --- base version -----------------------------------------------------------------------------


def logged(base: str, undone: bool = False, op: EditOp = EditOp.SET_TEXT) -> LoggedEdit:
    return LoggedEdit(edit(op, "r0", None, changed("r0", text=base), undone=undone), base)


def test_the_first_live_edit_pins_the_base_version():
    assert base_version([]) is None
    assert base_version([logged("m1", undone=True)]) is None  # an undone edit pins nothing
    assert base_version([logged("m1", undone=True), logged("m2"), logged("m3")]) == "m2"
    assert base_version([logged("m1", op=EditOp.SET_STATE), logged("m2")]) == "m1"  # a state change pins too


def test_a_new_edit_records_the_pinned_version_else_the_latest_prediction():
    assert version_to_pin("m1", "m2") == "m1"
    assert version_to_pin(None, "m2") == "m2"
    assert version_to_pin(None, None) == ""  # an image never predicted
    assert version_to_pin("", "m2") == ""  # pinned before any prediction came: stays pinned


def test_edits_apply_only_over_their_own_base():
    log = [logged("m1"), logged("m1")]
    assert shown_version(None, "m1") == "m1" and shown_version("m2", "m1") == "m2" and shown_version(None, None) is None
    assert replays_edits(None, "m1") and replays_edits("m1", "m1") and replays_edits("m2", None)
    assert not replays_edits("m2", "m1")
    assert edits_for(log, None) == [entry.edit for entry in log] == edits_for(log, "m1")
    assert edits_for(log, "m2") == []


# --- several reviewers ------------------------------------------------------------------------


def test_touched_regions_of_each_kind_of_edit():
    assert touched_regions(edit(EditOp.SET_TEXT, "r0", changed("r0"), changed("r0", text="x"))) == {"r0"}
    assert touched_regions(edit(EditOp.SET_STATE, None, "unreviewed", "reviewed")) == set()
    replaced = edit(EditOp.REPLACE, None, [changed("r0"), changed("r1")], [Region("a", QUAD, "x").to_dict()])
    assert touched_regions(replaced) == {"r0", "r1", "a"}
    assert touched_regions(edit(EditOp.REPLACE, None, [], None)) == set()


def test_blocking_edit_is_another_reviewers_later_live_edit_of_the_same_thing():
    mine = edit(EditOp.SET_TEXT, "r0", changed("r0"), changed("r0", text="alice"))
    own_later = edit(EditOp.SET_POINTS, "r0", changed("r0"), changed("r0", points=MOVED))
    elsewhere = edit(EditOp.SET_TEXT, "r1", changed("r1"), changed("r1", text="bob"), who="bob")
    undone = edit(EditOp.SET_TEXT, "r0", changed("r0"), changed("r0", text="bob"), who="bob", undone=True)
    state = edit(EditOp.SET_STATE, None, "in_progress", "reviewed", who="bob")
    assert blocking_edit(mine, [mine, own_later, elsewhere, undone, state]) is None
    bob1 = edit(EditOp.ACCEPT_REGION, "r0", changed("r0"), changed("r0"), who="bob")
    bob2 = edit(EditOp.DELETE_REGION, "r0", changed("r0"), None, who="bob")
    assert blocking_edit(mine, [mine, bob1, elsewhere, bob2]) is bob2  # the latest names who to ask
    assert blocking_edit(bob1, [mine, bob1]) is None  # an earlier edit does not block
    page = edit(EditOp.REPLACE, None, [changed("r0")], [], who="label-studio")
    assert blocking_edit(mine, [mine, page]) is page
    my_state = edit(EditOp.SET_STATE, None, "unreviewed", "in_progress")
    bob_state = edit(EditOp.SET_STATE, None, "in_progress", "reviewed", who="bob")
    assert blocking_edit(my_state, [my_state, bob2, bob_state]) is bob_state  # region edits do not block a state change
    assert blocking_edit(my_state, [my_state, bob2]) is None
