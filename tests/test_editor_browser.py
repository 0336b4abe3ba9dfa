"""The review editor in a real JupyterLab with Debian's Chromium (Playwright): every documented
key and mouse gesture, zoom and pan on a 300-dpi A4 page (2480x3508), the export's crops, focus,
messages, and two reviewers (two notebooks, two kernels) on one store file. The store file is
read from this process after each action: what the reviewer did must be in it.

Reuses tests/test_browser.py's `lab` (JupyterLab on loopback) and `page` (Chromium) fixtures."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from svtr_label.store import Store

from conftest import wait_until
from test_browser import ACTIVE, ARTIFACTS, lab, page, start_all_cells  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.pipeline]

EDITOR = f"{ACTIVE} .svtr-ed"

# Pages with known lines, built in the notebook's kernel (no OCR): also used by benchmarks/bench_editor.py.
BUILD = r'''
def build_store(store, folder, big=True):
    """Pages with known lines (no OCR): a 300-dpi A4 scan (2480x3508) with horizontal, rotated and
    vertical lines, a long one and a 9x6 px box; a page with no lines; a small generated page."""
    import math
    from pathlib import Path
    from PIL import Image, ImageDraw, ImageFont
    from svtr_label.core.images import decode_image
    from svtr_label.core.page import Page, Region
    from svtr_label.core.synth import find_font, make_page

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def add(img, name, regions):
        path = folder / name
        img.save(path)
        decoded = decode_image(path.read_bytes(), name)
        return store.add_page(Page(img.width, img.height, decoded.sha256, tuple(regions), "test-lines"), image_ref=str(path))

    def turned_text(page, text, size, at, degrees):
        font = ImageFont.truetype(find_font(), size)
        probe = ImageDraw.Draw(page).textbbox((0, 0), text, font=font)
        w, h = probe[2] + 16, probe[3] + 16
        layer = Image.new("L", (w, h), 0)
        ImageDraw.Draw(layer).text((8, 8), text, font=font, fill=255)
        turned = layer.rotate(degrees, expand=True)
        page.paste(Image.new("RGB", turned.size, (20, 20, 20)), at, turned)
        a = math.radians(degrees)
        c0, c1 = (w / 2, h / 2), (turned.width / 2, turned.height / 2)
        corners = [(4, 4), (w - 4, 4), (w - 4, h - 4), (4, h - 4)]
        return tuple((round(at[0] + c1[0] + (x - c0[0]) * math.cos(a) + (y - c0[1]) * math.sin(a), 1),
                      round(at[1] + c1[1] - (x - c0[0]) * math.sin(a) + (y - c0[1]) * math.cos(a), 1)) for x, y in corners)

    words = ["Invoice", "total", "amount", "date", "customer", "number", "tax", "paid", "due", "order", "item", "price"]
    if big:
        page = Image.new("RGB", (2480, 3508), "white")
        draw = ImageDraw.Draw(page)
        font = ImageFont.truetype(find_font(), 48)
        regions = []
        for i in range(26):
            text = f"{words[i % 12].capitalize()} {words[(i * 5 + 3) % 12]} {1000 + 37 * i}"
            if i == 5:
                text = "A long line that goes on and on: " + " ".join(words) + " and then some more words"
            x, y = 180, 220 + 120 * i
            l, t, r, b = draw.textbbox((x, y), text, font=font)
            draw.text((x, y), text, font=font, fill=(10, 10, 10))
            regions.append(Region(f"h{i:02d}", ((l - 6, t - 6), (r + 6, t - 6), (r + 6, b + 6), (l - 6, b + 6)), text, round(0.6 + 0.015 * i, 3)))
        regions.append(Region("rot30", turned_text(page, "Rotated thirty", 56, (1500, 1150), 30), "Rotated thirty", 0.55))
        regions.append(Region("vert", turned_text(page, "VERTICAL", 56, (2250, 1700), -90), "VERTICAL", 0.56))
        draw.text((1800, 2600), "11.", font=ImageFont.truetype(find_font(), 8), fill=(0, 0, 0))
        regions.append(Region("tiny", ((1800, 2601), (1809, 2601), (1809, 2607), (1800, 2607)), "11.", 0.5))
        add(page, "a4_scan.png", regions)
        add(Image.new("RGB", (1200, 800), "white"), "no_lines.png", [])
    synth = make_page(7, n_lines=6)
    add(synth.image.convert("RGB"), "small.png",
        [Region(f"s{i}", line.quad, line.text, round(0.7 + 0.04 * i, 3)) for i, line in enumerate(synth.lines)])
'''


def write_notebook(path: Path, store: Path, who: str, big: bool = True, height: int = 640, engine: bool = True) -> None:
    """A notebook that builds the store (when empty) and opens the editor on it as `who`."""
    import nbformat

    setup = (
        "# Settings\n"
        f"STORE, WHO, BIG = {str(store)!r}, {who!r}, {big!r}\n"
        f"{BUILD}\n"
        "from pathlib import Path\n"
        "from svtr_label import Services, Store\n"
        "store = Store(STORE)\n"
        "if not store.image_ids():\n"
        "    build_store(store, Path(STORE).parent / 'images', big=BIG)\n"
        + ("engine = Services.from_env().engine('bundled')\n" if engine else "engine = None\n")
    )
    show = f"from svtr_label_widgets.editor import Editor\neditor = Editor(store, engine=engine, who=WHO, height={height})\neditor"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell(show)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, path)


def open_editor(tab, url: str) -> None:
    tab.goto(url)
    # JupyterLab restores the earlier tabs first: wait until this notebook is the one on show.
    name = url.split("/lab/tree/", 1)[1].split("?", 1)[0]
    wait_until(lambda: tab.locator(".lm-TabBar-tab.lm-mod-current", has_text=name).count() > 0, timeout=90, what=f"{name}'s tab")
    wait_until(lambda: tab.locator(f"{ACTIVE} .jp-Notebook .jp-Cell").count() > 0 and tab.locator(ACTIVE).count() == 1,
               timeout=90, what=f"{name} on show")
    start_all_cells(tab)
    tab.wait_for_selector(f"{EDITOR} .svtr-overlay polygon, {EDITOR} .svtr-empty", timeout=240_000)


def dbg(tab) -> dict:
    return tab.evaluate(f"() => document.querySelector('{EDITOR}').svtrDebug()")


def maybe_dbg(tab) -> dict:
    """The editor's state, or {} while there is none (a kernel restart clears the output)."""
    return tab.evaluate(f"() => {{ const e = document.querySelector('{EDITOR}'); return e && e.svtrDebug ? e.svtrDebug() : {{}} }}")


def blank_point(tab, dx: float = -80, dy: float = -50) -> tuple[float, float]:
    """A point of the viewport over the page but on no box, with room for a drag of (dx, dy)."""
    return tab.evaluate(
        """([sel, dx, dy]) => {
          const vp = document.querySelector(sel + ' .svtr-viewport').getBoundingClientRect();
          for (let y = vp.bottom - 20; y > vp.top + 20; y -= 15)
            for (let x = vp.right - 30; x > vp.left + 20; x -= 15) {
              const ok = [[x, y], [x + dx, y + dy]].every(([a, b]) => {
                const el = document.elementFromPoint(a, b);
                return el && el.classList.contains('svtr-overlay');
              });
              if (ok && x + dx > vp.left + 5 && y + dy > vp.top + 5) return [x, y];
            }
          return null;
        }""",
        [EDITOR, dx, dy],
    )


def settled(tab, what: str = "the kernel to catch up") -> dict:
    """Wait until every command the browser sent was handled (and no outline edit waits to be sent)."""
    return wait_until(lambda: (lambda d: d if d["ack"] >= d["sent"] and d["pendingGeometry"] == 0 else None)(dbg(tab)), what=what)


def export_rec_texts(store_path: Path, out: Path) -> list[str]:
    """The texts `svtr-label export --format paddlex-rec` writes for the store (every split)."""
    from svtr_label.cli.main import main

    assert main(["export", str(store_path), "--format", "paddlex-rec", "--out", str(out), "--val-fraction", "0",
                 "--profile", "bundled", "--root", str(store_path.parent), "--no-progress"]) == 0
    rows = (out / "train.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[1] for line in rows if line]


def region(store_path: Path, image_id: int, rid: str):
    with Store(store_path) as store:
        return {r.id: r for r in store.current_page(image_id).regions}.get(rid)


def states(store_path: Path, image_id: int) -> dict:
    with Store(store_path) as store:
        return store.region_states(image_id)


def row(tab, rid: str):
    return tab.locator(f'{EDITOR} .svtr-line[data-rid="{rid}"]')


def focus_line(tab, rid: str) -> None:
    row(tab, rid).locator("textarea").click()
    wait_until(lambda: dbg(tab)["current"] == rid, what=f"line {rid} to become current")
    settled(tab)


def to_screen(tab, x: float, y: float) -> tuple[float, float]:
    d = dbg(tab)
    return d["stage"][0] + x * d["zoom"], d["stage"][1] + y * d["zoom"]


def close(a, b, tol=0.6) -> bool:
    return all(abs(p - q) <= tol for u, v in zip(a, b) for p, q in zip(u, v))


@pytest.fixture(scope="module")
def editor_tab(lab, page):  # noqa: F811  (the fixtures imported above)
    """The editor on a fresh store with the A4 page, a page with no lines and a small page."""
    root = Path(lab["store"]).parent.parent
    store = root / "keys" / "keys.sqlite"
    write_notebook(root / "editor_keys.ipynb", store, "keys-reviewer")
    open_editor(page, lab["url"].replace("02_review_and_correct.ipynb", "editor_keys.ipynb"))
    settled(page, "the editor to open")
    return {"tab": page, "store": store, "image": 1}


def test_opens_with_the_keyboard_the_file_name_and_the_exports_crops(editor_tab):
    tab, store = editor_tab["tab"], editor_tab["store"]
    d = wait_until(lambda: (lambda d: d if d["focus"] == "text:tiny" else None)(dbg(tab)), what="focus on the current line at open")
    assert d["current"] == "tiny"  # lowest confidence first
    assert "#1 a4_scan.png" in d["status"] and "image 1 of 3" in d["status"] and "lines checked 0/29" in d["status"]
    # The 9x6 px box: flagged as too small to read, and findable (a halo around it, hollow corner dots).
    assert "small crop" in row(tab, "tiny").locator(".svtr-meta").inner_text()
    assert tab.locator(f"{EDITOR} .svtr-halo").count() == 1 and tab.locator(f"{EDITOR} circle.svtr-vertex").count() == 4
    # Rotated and vertical lines show as the export's straightened crops: wide lines, not slivers.
    for rid in ("rot30", "vert", "h00"):
        img = row(tab, rid).locator("img.svtr-crop-img")
        size = wait_until(lambda: img.evaluate("i => i.complete && i.naturalWidth ? [i.naturalWidth, i.naturalHeight] : null"), what=f"{rid}'s crop")
        assert size[0] > 3 * size[1], (rid, size)
        assert img.bounding_box()["height"] >= 32  # at a legible height
    # The long line's whole text is visible (the box grows, nothing scrolls out of sight).
    ta = row(tab, "h05").locator("textarea")
    value, scroll_h, client_h = ta.evaluate("t => [t.value, t.scrollHeight, t.clientHeight]")
    assert value == region(store, 1, "h05").text and len(value) > 60 and scroll_h <= client_h + 2
    tab.locator(EDITOR).screenshot(path=str(ARTIFACTS / "editor-keys-01-open.png"))


def test_enter_tab_arrows_and_review_states(editor_tab):
    tab, store = editor_tab["tab"], editor_tab["store"]
    focus_line(tab, "tiny")
    tab.keyboard.press("Enter")  # accept as predicted
    wait_until(lambda: dbg(tab)["focus"] == "text:rot30", what="Enter to open the next unchecked line")
    settled(tab)
    assert states(store, 1) == {"tiny": "accepted"}
    tab.keyboard.press("Tab")
    assert wait_until(lambda: dbg(tab)["focus"] == "text:vert", what="Tab: next line")
    tab.keyboard.press("Shift+Tab")
    assert wait_until(lambda: dbg(tab)["focus"] == "text:rot30", what="Shift+Tab: previous line")
    tab.keyboard.press("ArrowDown")
    assert wait_until(lambda: dbg(tab)["focus"] == "text:vert", what="↓: next line")
    tab.keyboard.press("ArrowUp")
    assert wait_until(lambda: dbg(tab)["focus"] == "text:rot30", what="↑: previous line")
    tab.keyboard.press("Control+A")
    tab.keyboard.type("Rotated 30")
    tab.keyboard.press("Enter")
    settled(tab)
    assert region(store, 1, "rot30").text == "Rotated 30"
    assert states(store, 1) == {"tiny": "accepted", "rot30": "corrected"}
    assert "✓ accepted" in row(tab, "tiny").inner_text() and "✎ corrected" in row(tab, "rot30").inner_text()
    # Text typed in a line and left with Tab is kept (written), not lost.
    focus_line(tab, "h10")
    tab.keyboard.press("End")
    tab.keyboard.type(" extra")
    tab.keyboard.press("Tab")
    settled(tab)
    assert region(store, 1, "h10").text.endswith(" extra") and states(store, 1)["h10"] == "corrected"  # typed: checked


def test_alt_keys_edit_undo_redo_and_messages_stay(editor_tab):
    tab, store = editor_tab["tab"], editor_tab["store"]
    original = region(store, 1, "h00").text
    focus_line(tab, "h00")
    tab.keyboard.press("Alt+KeyI")
    settled(tab)
    assert region(store, 1, "h00").text == "###"
    tab.keyboard.press("Alt+KeyZ")
    settled(tab)
    assert region(store, 1, "h00").text == original
    tab.keyboard.press("Alt+KeyY")
    settled(tab)
    assert region(store, 1, "h00").text == "###"
    tab.keyboard.press("Alt+KeyZ")
    settled(tab)
    tab.keyboard.press("Alt+Shift+KeyZ")
    settled(tab)
    assert region(store, 1, "h00").text == "###"
    tab.keyboard.press("Alt+KeyZ")
    settled(tab)
    assert region(store, 1, "h00").text == original
    # A message stays until the next action.
    message = dbg(tab)["message"]
    assert message.startswith("undone")
    time.sleep(1.5)
    assert dbg(tab)["message"] == message
    tab.keyboard.press("Alt+KeyD")
    settled(tab)
    assert region(store, 1, "h00") is None and "deleted" in dbg(tab)["message"]
    tab.keyboard.press("Alt+KeyZ")
    settled(tab)
    assert region(store, 1, "h00") is not None
    # Re-read: a wrong text is read again from its box by the engine.
    focus_line(tab, "h01")
    tab.keyboard.press("Control+A")
    tab.keyboard.type("garbage")
    tab.keyboard.press("Alt+KeyR")
    settled(tab)
    reread = region(store, 1, "h01")
    assert reread.text not in ("garbage", "") and reread.score != 0.615 and "re-read" in dbg(tab)["message"]
    tab.keyboard.press("Alt+Shift+KeyR")
    wait_until(lambda: "re-read 29 lines" in dbg(tab)["message"], timeout=120, what="every box re-read")
    tab.keyboard.press("Alt+KeyS")
    settled(tab)
    with Store(store) as s:
        assert s.get_image(1).state == "reviewed"


def test_zoom_and_pan(editor_tab):
    tab = editor_tab["tab"]
    focus_line(tab, "h20")
    d = dbg(tab)
    fit = d["fit"]
    assert d["zoom"] == pytest.approx(fit) and fit < 0.25  # the whole A4 page in the viewport
    tab.keyboard.press("Alt+Equal")
    assert dbg(tab)["zoom"] == pytest.approx(fit * 1.25)
    tab.keyboard.press("Alt+Minus")
    assert dbg(tab)["zoom"] == pytest.approx(fit)
    tab.keyboard.press("Alt+Equal")
    tab.keyboard.press("Alt+Digit0")
    assert dbg(tab)["zoom"] == pytest.approx(fit)
    tab.keyboard.press("Alt+KeyP")
    assert dbg(tab)["focus"] == "picture"
    tab.keyboard.press("Shift+Equal")  # "+"
    assert dbg(tab)["zoom"] == pytest.approx(fit * 1.25)
    tab.keyboard.press("Equal")
    assert dbg(tab)["zoom"] == pytest.approx(fit * 1.25 ** 2)
    tab.keyboard.press("Minus")
    assert dbg(tab)["zoom"] == pytest.approx(fit * 1.25)
    tab.keyboard.press("Digit0")
    assert dbg(tab)["zoom"] == pytest.approx(fit)
    # Alt+F: the current line fills the viewport's width, centred; again: the whole page.
    tab.keyboard.press("Alt+KeyF")
    d = dbg(tab)
    assert d["zoomLine"] and d["zoom"] > 4 * fit
    (x0, y0), (x1, y1) = d["points"]["h20"][0], d["points"]["h20"][2]
    cx, cy = (x0 + x1) / 2 * d["zoom"] - d["scroll"][0], (y0 + y1) / 2 * d["zoom"] - d["scroll"][1]
    assert abs(cx - d["view"][0] / 2) < 3 and abs(cy - d["view"][1] / 2) < 3
    tab.keyboard.press("Alt+KeyF")
    assert dbg(tab)["zoom"] == pytest.approx(fit) and not dbg(tab)["zoomLine"]
    # Ctrl+wheel zooms at the pointer: once the page is larger than the viewport, the page point
    # under the pointer stays under it.
    for _ in range(3):
        tab.keyboard.press("Alt+Equal")
    sx, sy = to_screen(tab, 1200, 1700)
    tab.mouse.move(sx, sy)
    for _ in range(2):
        tab.keyboard.down("Control")
        tab.mouse.wheel(0, -100)
        tab.keyboard.up("Control")
    d = wait_until(lambda: (lambda d: d if d["zoom"] > 3 * fit else None)(dbg(tab)), what="Ctrl+wheel to zoom in")
    assert d["zoom"] == pytest.approx(fit * 1.25 ** 5)
    px, py = to_screen(tab, 1200, 1700)
    assert abs(px - sx) < 3 and abs(py - sy) < 3
    tab.keyboard.down("Control")
    tab.mouse.wheel(0, 100)
    tab.keyboard.up("Control")
    d = wait_until(lambda: (lambda d: d if d["zoom"] < 3 * fit else None)(dbg(tab)), what="Ctrl+wheel to zoom out")
    assert d["zoom"] == pytest.approx(fit * 1.25 ** 4)
    # The wheel pans; so does dragging the page.
    before = dbg(tab)["scroll"]
    tab.mouse.wheel(0, 200)
    wait_until(lambda: dbg(tab)["scroll"][1] > before[1], what="the wheel to pan")
    before = dbg(tab)["scroll"]
    start = blank_point(tab)
    assert start, "no free spot on the page to drag"
    tab.mouse.move(*start)
    tab.mouse.down()
    tab.mouse.move(start[0] - 80, start[1] - 50, steps=4)
    tab.mouse.up()
    after = dbg(tab)["scroll"]
    assert after[0] - before[0] == pytest.approx(80, abs=2) and after[1] - before[1] == pytest.approx(50, abs=2)
    # Moving to a line out of view scrolls it into view.
    row(tab, "h00").locator("textarea").click()
    d = wait_until(lambda: (lambda d: d if d["current"] == "h00" else None)(dbg(tab)), what="h00 current")
    (x0, y0), (x1, y1) = d["points"]["h00"][0], d["points"]["h00"][2]
    z, (sl, st), (_, vh) = d["zoom"], d["scroll"], d["view"]
    assert sl <= x0 * z and y0 * z >= st and y1 * z <= st + vh
    tab.keyboard.press("Alt+Digit0")
    tab.locator(EDITOR).screenshot(path=str(ARTIFACTS / "editor-keys-02-zoom.png"))


def test_picture_keys_nudge_corners_and_turn(editor_tab):
    tab, store = editor_tab["tab"], editor_tab["store"]
    focus_line(tab, "h03")
    start = region(store, 1, "h03").points
    tab.keyboard.press("Alt+KeyP")
    assert dbg(tab)["focus"] == "picture"
    tab.keyboard.press("ArrowRight")
    tab.keyboard.press("Shift+ArrowDown")
    settled(tab)
    assert close(region(store, 1, "h03").points, [(x + 1, y + 10) for x, y in start])
    assert "h03" not in states(store, 1) and "box moved" in row(tab, "h03").inner_text()  # text unchecked again
    tab.keyboard.press("ArrowLeft")
    tab.keyboard.press("Shift+ArrowUp")
    settled(tab)
    assert close(region(store, 1, "h03").points, start)
    tab.keyboard.press("2")
    assert dbg(tab)["vertex"] == 1
    tab.keyboard.press("ArrowLeft")
    settled(tab)
    now = region(store, 1, "h03").points
    assert now[1] == pytest.approx((start[1][0] - 1, start[1][1])) and close([now[0], now[2], now[3]], [start[0], start[2], start[3]])
    tab.keyboard.press("Escape")
    assert dbg(tab)["vertex"] == -1 and dbg(tab)["focus"] == "picture"
    before = region(store, 1, "h03").points
    tab.keyboard.press("BracketRight")  # ] turns 1 degree
    settled(tab)
    after = region(store, 1, "h03").points
    cx, cy = sum(p[0] for p in before) / 4, sum(p[1] for p in before) / 4
    angle = math.degrees(math.atan2(after[0][1] - cy, after[0][0] - cx) - math.atan2(before[0][1] - cy, before[0][0] - cx))
    assert angle == pytest.approx(1, abs=0.1)
    tab.keyboard.press("Shift+BracketLeft")  # Shift+[ turns -5 degrees
    tab.keyboard.press("BracketLeft")
    tab.keyboard.press("Shift+BracketRight")
    settled(tab)
    assert close(region(store, 1, "h03").points, before, tol=0.3)
    # Corners: add two, remove two.
    tab.keyboard.press("2")
    tab.keyboard.press("v")
    tab.keyboard.press("Insert")
    settled(tab)
    assert len(region(store, 1, "h03").points) == 6 and dbg(tab)["vertex"] == 3
    tab.keyboard.press("Delete")
    settled(tab)
    assert len(region(store, 1, "h03").points) == 5
    tab.keyboard.press("Backspace")  # no corner selected: said, nothing removed
    assert "select a corner first" in dbg(tab)["message"]
    tab.keyboard.press("3")
    tab.keyboard.press("Backspace")
    settled(tab)
    assert close(region(store, 1, "h03").points, before, tol=0.3)
    # j / k move between lines with the keyboard on the picture; Esc gives it back to the text.
    ids = dbg(tab)["ids"]
    i = ids.index("h03")
    tab.keyboard.press("j")
    assert dbg(tab)["current"] == ids[i + 1] and dbg(tab)["focus"] == "picture"
    tab.keyboard.press("k")
    assert dbg(tab)["current"] == "h03"
    tab.keyboard.press("Escape")
    assert dbg(tab)["focus"] == "text:h03"
    settled(tab)


def test_mouse_gestures_and_drawing(editor_tab):
    tab, store = editor_tab["tab"], editor_tab["store"]
    focus_line(tab, "h07")
    tab.keyboard.press("Alt+KeyF")  # big enough to aim at corners
    r = region(store, 1, "h08")
    cx, cy = sum(p[0] for p in r.points) / 4, sum(p[1] for p in r.points) / 4
    tab.mouse.click(*to_screen(tab, cx, cy))  # click a box: it becomes the current line
    wait_until(lambda: dbg(tab)["current"] == "h08", what="a click to select the box")
    settled(tab)
    z = dbg(tab)["zoom"]
    start = region(store, 1, "h08").points
    # Drag a corner dot.
    sx, sy = to_screen(tab, *start[0])
    tab.mouse.move(sx, sy)
    tab.mouse.down()
    tab.mouse.move(sx - 20, sy - 10, steps=5)
    tab.mouse.up()
    settled(tab)
    moved = region(store, 1, "h08").points
    assert moved[0] == pytest.approx((start[0][0] - 20 / z, start[0][1] - 10 / z), abs=0.3) and close(moved[1:], start[1:])
    # Drag inside the current box: the whole box moves.
    sx, sy = to_screen(tab, cx + 30, cy)
    tab.mouse.move(sx, sy)
    tab.mouse.down()
    tab.mouse.move(sx + 15, sy + 5, steps=5)
    tab.mouse.up()
    settled(tab)
    shifted = region(store, 1, "h08").points
    assert close(shifted, [(x + 15 / z, y + 5 / z) for x, y in moved], tol=0.3)
    # Double-click an edge: a corner there; Alt+click a corner: gone.
    top = ((shifted[0][0] + shifted[1][0]) / 2, (shifted[0][1] + shifted[1][1]) / 2)
    tab.mouse.dblclick(*to_screen(tab, *top))
    settled(tab)
    assert len(region(store, 1, "h08").points) == 5
    new = region(store, 1, "h08").points[1]
    tab.keyboard.down("Alt")
    tab.mouse.click(*to_screen(tab, *new))
    tab.keyboard.up("Alt")
    settled(tab)
    assert close(region(store, 1, "h08").points, shifted, tol=0.3)
    tab.keyboard.press("Alt+Digit0")
    n0 = len(dbg(tab)["ids"])
    # Shift+drag draws a box around known text; the engine reads it; the new line is unchecked.
    h = region(store, 1, "h12")
    (x0, y0), (x1, y1) = h.points[0], h.points[2]
    a, b = to_screen(tab, x0 - 2, y0 - 2), to_screen(tab, x1 + 2, y1 + 2)
    tab.keyboard.down("Shift")
    tab.mouse.move(*a)
    tab.mouse.down()
    tab.mouse.move(*b, steps=6)
    tab.mouse.up()
    tab.keyboard.up("Shift")
    d = wait_until(lambda: (lambda d: d if len(d["ids"]) == n0 + 1 and d["ack"] >= d["sent"] else None)(dbg(tab)), timeout=60, what="the drawn box")
    drawn = d["current"]
    assert drawn.startswith("user-") and d["states"][drawn] == "drawn" and drawn not in states(store, 1)
    assert region(store, 1, drawn).text.replace(" ", "")[:6] == h.text.replace(" ", "")[:6]
    # Alt+N, then drag: a box; Esc stops drawing.
    tab.keyboard.press("Alt+KeyN")
    assert dbg(tab)["mode"] == "box"
    tab.keyboard.press("Escape")
    assert dbg(tab)["mode"] == ""
    tab.keyboard.press("Alt+KeyN")
    a, b = to_screen(tab, 1300, 3000), to_screen(tab, 1700, 3080)
    tab.mouse.move(*a)
    tab.mouse.down()
    tab.mouse.move(*b, steps=6)
    tab.mouse.up()
    d = wait_until(lambda: (lambda d: d if len(d["ids"]) == n0 + 2 and d["ack"] >= d["sent"] else None)(dbg(tab)), timeout=60, what="the Alt+N box")
    assert d["mode"] == ""
    (bx0, by0), (bx1, by1) = region(store, 1, d["current"]).points[0], region(store, 1, d["current"]).points[2]
    assert (bx0, by0) == pytest.approx((1300, 3000), abs=3 / d["zoom"]) and (bx1, by1) == pytest.approx((1700, 3080), abs=3 / d["zoom"])
    # Alt+Q: four clicks, a 4-point box with those corners.
    tab.keyboard.press("Alt+KeyQ")
    corners = [(1300, 3150), (1700, 3140), (1710, 3220), (1295, 3230)]
    for c in corners:
        tab.mouse.click(*to_screen(tab, *c))
    d = wait_until(lambda: (lambda d: d if len(d["ids"]) == n0 + 3 and d["ack"] >= d["sent"] else None)(dbg(tab)), timeout=60, what="the 4-point box")
    assert close(sorted(region(store, 1, d["current"]).points), sorted(corners), tol=3 / d["zoom"])
    # Alt+B: start, end, height: a rotated rectangle along the line.
    tab.keyboard.press("Alt+KeyB")
    for c in [(1300, 3300), (1700, 3260), (1705, 3320)]:
        tab.mouse.click(*to_screen(tab, *c))
    d = wait_until(lambda: (lambda d: d if len(d["ids"]) == n0 + 4 and d["ack"] >= d["sent"] else None)(dbg(tab)), timeout=60, what="the rotated box")
    pts = region(store, 1, d["current"]).points
    sides = [math.dist(pts[i], pts[(i + 1) % 4]) for i in range(4)]
    assert sides[0] == pytest.approx(sides[2], rel=0.02) and sides[1] == pytest.approx(sides[3], rel=0.02)
    assert max(sides) == pytest.approx(math.dist((1300, 3300), (1700, 3260)), abs=4 / d["zoom"])
    tab.locator(EDITOR).screenshot(path=str(ARTIFACTS / "editor-keys-03-drawn.png"))


def test_images_and_an_empty_page_keep_the_keyboard(editor_tab):
    tab = editor_tab["tab"]
    focus_line(tab, "h02")
    tab.keyboard.press("PageDown")
    d = wait_until(lambda: (lambda d: d if "#2 no_lines.png" in d["status"] else None)(dbg(tab)), what="the page with no lines")
    assert d["ids"] == [] and wait_until(lambda: dbg(tab)["focus"] == "picture", what="focus kept on an image with no lines")
    tab.keyboard.press("PageDown")
    wait_until(lambda: "#3 small.png" in dbg(tab)["status"], what="the third image")
    wait_until(lambda: dbg(tab)["focus"].startswith("text:s"), what="focus on the small page's first line")
    tab.keyboard.press("PageUp")
    wait_until(lambda: "#2 no_lines.png" in dbg(tab)["status"], what="back to the empty page")
    wait_until(lambda: dbg(tab)["focus"] == "picture", what="focus on the empty page")
    tab.keyboard.press("PageUp")  # issue 14: PgUp on an image with no lines did nothing
    wait_until(lambda: "#1 a4_scan.png" in dbg(tab)["status"], what="PgUp from the empty page")
    settled(tab)


def test_two_reviewers_on_one_store(lab, page):  # noqa: F811
    """Two notebooks (two kernels) on one store file: bob's change reaches alice's screen by
    itself; alice's edit of a line bob changed after she began is shown, not applied; reopening
    after a kernel restart resumes where alice stopped."""
    root = Path(lab["store"]).parent.parent
    store = root / "shared" / "shared.sqlite"
    for who in ("alice", "bob"):
        write_notebook(root / f"review_{who}.ipynb", store, who, big=False, engine=False)
    alice = page
    open_editor(alice, lab["url"].replace("02_review_and_correct.ipynb", "review_alice.ipynb"))
    settled(alice, "alice's editor")
    bob = page.context.browser.new_page(viewport={"width": 1600, "height": 1100})
    bob.set_default_timeout(60_000)
    try:
        open_editor(bob, lab["url"].replace("02_review_and_correct.ipynb", "review_bob.ipynb"))
        settled(bob, "bob's editor")
        image_id = 1
        # Alice starts typing in s0 ...
        focus_line(alice, "s0")
        alice.keyboard.press("End")
        alice.keyboard.type(" by alice")
        # ... bob corrects the same line and accepts it ...
        focus_line(bob, "s0")
        bob.keyboard.press("Control+A")
        bob.keyboard.type("bob was first")
        bob.keyboard.press("Enter")
        settled(bob)
        assert region(store, image_id, "s0").text == "bob was first"
        # ... and accepts s1 as it is: alice's screen shows it checked by itself (polling).
        focus_line(bob, "s1")
        bob.keyboard.press("Enter")
        settled(bob)
        alice.bring_to_front()
        wait_until(lambda: "checked" in (row(alice, "s1").get_attribute("class") or ""), timeout=15, what="bob's check on alice's screen")
        # Alice presses Enter on her stale text: refused, shown, the line reloaded with bob's text.
        row(alice, "s0").locator("textarea").focus()
        alice.keyboard.press("Enter")
        d = wait_until(lambda: (lambda d: d if "not applied" in d["message"] else None)(dbg(alice)), what="the stale edit shown")
        assert "bob" in d["message"] and "bob was first" in d["message"]
        assert region(store, image_id, "s0").text == "bob was first"
        wait_until(lambda: row(alice, "s0").locator("textarea").input_value() == "bob was first", what="the line reloaded")
        with Store(store) as s:
            assert [e.who for e in s.history(image_id) if not e.undone] == ["bob", "bob", "bob"]
            stored = sorted(r.text for r in s.current_page(image_id).regions if r.text != "###")
        # What the two checked is exactly what the export writes.
        exported = export_rec_texts(store, root / "export")
        assert sorted(exported) == stored and "bob was first" in exported
        assert not any("by alice" in t for t in exported)
        # Undo is per reviewer: alice has nothing to undo, bob's work stays.
        alice.keyboard.press("Alt+KeyZ")
        wait_until(lambda: "nothing of yours" in dbg(alice)["message"], what="alice's undo")
        assert region(store, image_id, "s0").text == "bob was first"
        alice.locator(EDITOR).screenshot(path=str(ARTIFACTS / "editor-two-reviewers-alice.png"))
        # Alice moves to s3; after a kernel restart her editor reopens there.
        focus_line(alice, "s3")
        alice.locator(".lm-MenuBar-itemLabel", has_text="Kernel").first.click()
        alice.locator(".lm-Menu-itemLabel", has_text="Restart Kernel and Run All Cells").first.click()
        alice.locator(".jp-Dialog button.jp-mod-accept").click()
        wait_until(lambda: (lambda d: d.get("current") == "s3" and "resumed" in d.get("message", ""))(maybe_dbg(alice)),
                   timeout=120, what="alice's editor reopened where she stopped")
    finally:
        bob.close()
