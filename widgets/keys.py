"""The editor's keys and mouse gestures: the ONE definition. The editor's ES module reads `KEYMAP`
(a traitlet) to dispatch key presses, the help table under the editor is rendered from it, and the
toolbar's buttons carry its keys as tooltips; the README lists the same rows (a test compares them).

A key is written as JavaScript sees it: modifiers in the order Ctrl+Alt+Shift, then the
`KeyboardEvent.code` for letters with a modifier ("Alt+KeyZ": Alt changes `key` on macOS) or the
`KeyboardEvent.key` otherwise ("Enter", "ArrowDown", "+", "["). `shift`: the same key with Shift
also matches (nudges 10 px instead of 1).

`where`: "anywhere" (also while typing in a line's text), "text" (in a line's text only),
"picture" (the picture has the keyboard: click it, or Alt+P).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Key:
    keys: tuple[str, ...]
    cmd: str
    help: str
    where: str = "anywhere"
    shift: bool = False  # Shift with these keys does the same, further (nudge 10 px, turn 5°)
    shown: str = ""  # how the help writes the keys, when listing each would be long

    def label(self) -> str:
        """The keys as a person reads them: "Alt+Z", "↓", "Shift+Tab"."""
        return self.shown or " / ".join(_pretty(k) for k in self.keys)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["keys"] = list(self.keys)
        d["label"] = self.label()
        return d


_NAMES = {
    "ArrowDown": "↓", "ArrowUp": "↑", "ArrowLeft": "←", "ArrowRight": "→", "PageDown": "PgDn", "PageUp": "PgUp",
    "Escape": "Esc", "Delete": "Del", "Backspace": "⌫", "Equal": "=", "Minus": "-",
}


def _pretty(combo: str) -> str:
    if combo == "+":
        return "+"
    *mods, last = combo.split("+")
    last = last[3:] if last.startswith("Key") else last[5:] if last.startswith("Digit") else _NAMES.get(last, last)
    return "+".join([*mods, last])


KEYMAP: tuple[Key, ...] = (
    # -- review ------------------------------------------------------------------------------
    Key(("Enter",), "accept", "accept the line with the text as typed, go to the next unchecked line", shift=True),
    Key(("Tab", "ArrowDown"), "next_line", "next line (the text typed so far is kept)", "text"),
    Key(("Shift+Tab", "ArrowUp"), "prev_line", "previous line", "text"),
    Key(("PageDown",), "next_image", "next image"),
    Key(("PageUp",), "prev_image", "previous image"),
    Key(("Alt+KeyI",), "illegible", "illegible: the text becomes ###"),
    Key(("Alt+KeyD",), "delete", "delete the line"),
    Key(("Alt+KeyR",), "rerecognize", "re-read the line from its box with the OCR engine"),
    Key(("Alt+Shift+KeyR",), "rerecognize_all", "re-read every box of this image"),
    Key(("Alt+KeyZ",), "undo", "undo your last edit of this image (never another reviewer's)"),
    Key(("Alt+KeyY", "Alt+Shift+KeyZ"), "redo", "redo what you undid"),
    Key(("Alt+KeyS",), "reviewed", "mark the image reviewed"),
    # -- view --------------------------------------------------------------------------------
    Key(("Alt+KeyF",), "zoom_line", "zoom to the line / back to the whole page"),
    Key(("Alt+Equal",), "zoom_in", "zoom in (also Ctrl+wheel on the picture)"),
    Key(("Alt+Minus",), "zoom_out", "zoom out"),
    Key(("Alt+Digit0",), "zoom_fit", "whole page"),
    Key(("+", "="), "zoom_in", "zoom in", "picture"),
    Key(("-",), "zoom_out", "zoom out", "picture"),
    Key(("0",), "zoom_fit", "whole page", "picture"),
    Key(("Alt+KeyP",), "focus_toggle", "keyboard to the picture (nudge, corners) / back to the text"),
    # -- boxes -------------------------------------------------------------------------------
    Key(("Alt+KeyN",), "draw_box", "draw a box: drag on the picture (or Shift+drag any time)"),
    Key(("Alt+KeyQ",), "draw_quad", "draw a 4-point box: click its four corners"),
    Key(("Alt+KeyB",), "draw_rotated", "draw a rotated box: click where the line starts, where it ends, then its height"),
    Key(("ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"), "nudge", "move the selected corner, or the whole box (Shift: 10 px)", "picture",
        shift=True, shown="← → ↑ ↓"),
    Key(("1", "2", "3", "4", "5", "6", "7", "8", "9"), "vertex", "select that corner of the line", "picture", shown="1–9"),
    Key(("[", "]", "BracketLeft", "BracketRight"), "rotate", "turn the box 1° (Shift: 5°)", "picture", shift=True, shown="[ / ]"),
    Key(("Insert", "v"), "add_vertex", "add a corner halfway along the edge after the selected one", "picture"),
    Key(("Delete", "Backspace"), "remove_vertex", "remove the selected corner (a box keeps at least 3)", "picture"),
    Key(("j",), "next_line", "next line", "picture"),
    Key(("k",), "prev_line", "previous line", "picture"),
    Key(("Escape",), "escape", "stop drawing, drop the corner selection, or give the keyboard back to the text"),
)

# Mouse gestures: documented beside the keys (the ES module implements them, the tests drive them).
GESTURES: tuple[tuple[str, str], ...] = (
    ("click a box", "make it the current line"),
    ("drag a corner dot", "move that corner"),
    ("drag inside the current box", "move the whole box"),
    ("double-click an edge of the current box", "add a corner there"),
    ("Alt+click a corner dot", "remove that corner"),
    ("Shift+drag", "draw a new box (its text is read for you)"),
    ("drag the page / wheel", "pan"),
    ("Ctrl+wheel", "zoom at the pointer"),
)

COMMANDS = frozenset(k.cmd for k in KEYMAP)


def keymap_json() -> list[dict[str, Any]]:
    return [k.to_dict() for k in KEYMAP]


def help_rows() -> list[tuple[str, str, str]]:
    """(keys, what, where) for the help table: keys first, then mouse gestures."""
    where = {"anywhere": "", "text": "in a text", "picture": "on the picture"}
    rows = [(k.label(), k.help, where[k.where]) for k in KEYMAP]
    rows += [(g, what, "mouse") for g, what in GESTURES]
    return rows
