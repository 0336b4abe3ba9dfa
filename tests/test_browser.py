"""A reviewer's session in a real browser: JupyterLab on loopback with a token, Debian's Chromium
driven by Playwright, the review notebook run from the Run menu; the editor's picture and boxes
render, a line is corrected by typing, a corner is dragged, a box is drawn, a line is fixed in the
review queue, and all of it is in the store. Screenshots go to test-artifacts/ (docs/editor.png
with SVTR_UPDATE_DOCS=1). Every key and gesture: tests/test_editor_browser.py."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from svtr_label.store import Store

from conftest import free_port, wait_for_http, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.pipeline]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("SVTR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
NOTEBOOK = "02_review_and_correct.ipynb"
EXPLORE = "01_preannotate_and_explore.ipynb"
EDITED = "券后价¥"  # a reviewer's correction of the lowest-scored line of ch_en_num.jpg (README screenshot)
# The notebook on show: JupyterLab 4 hides the other tabs with `content-visibility: hidden` (or lm-mod-hidden).
ACTIVE = '.jp-NotebookPanel:not(.lm-mod-hidden):not([style*="content-visibility: hidden"])'


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a temp folder holding the review notebook; its kernels use a temp store."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright")
    root = tmp_path_factory.mktemp("lab")
    for name in (NOTEBOOK, EXPLORE):
        shutil.copy(REPO / "notebooks" / name, root / name)
    config = root / ".jupyter-config"
    (config / "labconfig").mkdir(parents=True)
    # The news pop-up would cover the notebook; nothing here may reach the network anyway.
    (config / "labconfig" / "page_config.json").write_text(
        '{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}'
    )
    token, port = secrets.token_hex(16), free_port()
    env = {
        **os.environ,
        "SVTR_WORK": str(root / "work"),
        "SVTR_SAMPLES": str(REPO / "samples"),
        "SVTR_N_SAMPLES": "2",
        "SVTR_REVIEWER": "playwright",
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(root / ".jupyter-runtime"),
    }
    log = root / "jupyterlab.log"
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={root / '.workspaces'}",
        f"--LabApp.user_settings_dir={root / '.settings'}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # the default one asks PyPI
    ]
    if os.geteuid() == 0:  # CI and the dev machines run as root
        cmd.append("--allow-root")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/api/status?token={token}", proc, "JupyterLab", lambda: log.read_text()[-3000:])
        yield {
            "url": f"{base}/lab/tree/{NOTEBOOK}?token={token}",
            "explore_url": f"{base}/lab/tree/{EXPLORE}?token={token}",
            "store": root / "work" / "review.sqlite",
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(log, ARTIFACTS / "jupyterlab.log")


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1600, "height": 1100})
        tab.set_default_timeout(60_000)
        console: list[str] = []
        tab.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        try:
            yield tab
        finally:
            tab.screenshot(path=str(ARTIFACTS / "browser-final.png"), full_page=True)
            (ARTIFACTS / "browser-console.log").write_text("\n".join(console))
            browser.close()


def save_small_png(source: Path, target: Path) -> None:
    """A 256-colour copy for the README: a third of the size, no visible loss on a UI screenshot."""
    from PIL import Image

    with Image.open(source) as img:
        img.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(target, optimize=True)


def run_all_cells(tab) -> None:
    tab.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    tab.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def start_all_cells(tab, attempts: int = 3) -> None:
    """Run All once the kernel is idle; a click made while the session still connects can be
    dropped, so it is repeated until the first code cell shows it ran (the notebook is idempotent)."""
    # Scoped to the notebook on show: JupyterLab keeps the earlier test's notebook open in another tab.
    first_prompt = tab.locator(f"{ACTIVE} .jp-CodeCell .jp-InputPrompt").first
    for _ in range(attempts):
        tab.wait_for_selector(".jp-StatusBar-TextItem:has-text('Idle')", timeout=90_000)
        run_all_cells(tab)
        try:
            wait_until(lambda: any(ch.isdigit() or ch == "*" for ch in first_prompt.inner_text()), timeout=15, what="a cell to run")
            return
        except pytest.fail.Exception:
            continue
    pytest.fail("Run All Cells never started the notebook")


def status(tab) -> str:
    return tab.locator(f"{ACTIVE} .svtr-ed .svtr-status").inner_text()


def test_review_notebook_in_jupyterlab(lab, page):
    tab = page
    tab.goto(lab["url"])
    tab.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    start_all_cells(tab)

    # The picture and its boxes are drawn; one row (crop + text) per line beside them.
    tab.wait_for_selector(".svtr-ed .svtr-overlay polygon.svtr-quad", timeout=180_000)
    editor = tab.locator(".svtr-ed").first
    editor.scroll_into_view_if_needed()
    quads = tab.locator(".svtr-ed .svtr-overlay polygon.svtr-quad")
    rows = tab.locator(".svtr-ed .svtr-line")
    assert quads.count() > 0 and quads.count() == rows.count()
    picture = tab.locator(".svtr-ed img.svtr-page").bounding_box()
    assert picture and picture["width"] > 200 and picture["height"] > 200
    tab.screenshot(path=str(ARTIFACTS / "01-editor-rendered.png"), full_page=True)

    with Store(lab["store"]) as store:
        image_id = store.image_ids()[0]
        name = Path(store.get_image(image_id).ref).name
        lowest = min(store.current_page(image_id).regions, key=lambda r: r.score if r.score is not None else -1)
    assert f"#{image_id} {name}" in status(tab) and "image 1 of 2" in status(tab)

    # The keyboard is in the first (lowest-confidence) line's text from the start: type, Enter.
    box = rows.first.locator("textarea")
    assert box.input_value() == lowest.text
    wait_until(lambda: tab.evaluate("() => document.activeElement === document.querySelector('.svtr-ed .svtr-line textarea')"),
               what="focus on the first line at open")
    tab.keyboard.press("Control+A")
    tab.keyboard.type(EDITED)
    tab.keyboard.press("Enter")
    wait_until(lambda: "lines checked 1/" in status(tab), what="the status to count the corrected line")
    # Enter moved the keyboard to the next line's text box.
    wait_until(lambda: tab.evaluate("() => document.activeElement && document.activeElement.closest('.svtr-line') !== null"
                                    " && document.activeElement.closest('.svtr-line') !== document.querySelector('.svtr-line')"),
               what="focus on the next line")
    with Store(lab["store"]) as store:
        texts = {r.id: r.text for r in store.current_page(image_id).regions}
        assert texts[lowest.id] == EDITED
        assert store.region_states(image_id)[lowest.id] == "corrected"
        assert [e.who for e in store.history(image_id)] == ["playwright", "playwright"]
    assert "✎ corrected" in rows.first.inner_text()
    tab.screenshot(path=str(ARTIFACTS / "02-line-corrected.png"), full_page=True)
    editor.screenshot(path=str(ARTIFACTS / "02-editor-after-one-correction.png"))
    if os.environ.get("SVTR_UPDATE_DOCS") == "1":  # the README's picture: one line fixed, the next one open
        save_small_png(ARTIFACTS / "02-editor-after-one-correction.png", REPO / "docs" / "editor.png")

    # Drag a corner of the current line: the new point is stored.
    handle = tab.locator(".svtr-ed circle.svtr-vertex").nth(1)
    hb = handle.bounding_box()
    tab.mouse.move(hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2)
    tab.mouse.down()
    tab.mouse.move(hb["x"] + 25, hb["y"] - 10, steps=5)
    tab.mouse.up()
    with Store(lab["store"]) as store:
        wait_until(lambda: store.history(image_id)[-1].op == "set_points", what="the dragged corner in the store")

    # Shift+drag draws a new box; the engine reads its text.
    overlay = tab.locator(".svtr-ed .svtr-stage").first.bounding_box()
    n_before = quads.count()
    tab.keyboard.down("Shift")
    tab.mouse.move(overlay["x"] + 10, overlay["y"] + 10)
    tab.mouse.down()
    tab.mouse.move(overlay["x"] + 150, overlay["y"] + 60, steps=5)
    tab.mouse.up()
    tab.keyboard.up("Shift")
    wait_until(lambda: quads.count() == n_before + 1, what="the drawn box")
    with Store(lab["store"]) as store:
        wait_until(lambda: store.history(image_id)[-1].op == "add_region", what="the drawn box in the store")

    # Alt+Z in the editor undoes it.
    tab.locator(".svtr-ed .svtr-line textarea").first.click()
    tab.keyboard.press("Alt+KeyZ")
    wait_until(lambda: quads.count() == n_before, what="undo of the drawn box")
    editor.screenshot(path=str(ARTIFACTS / "03-editor.png"))

    # ↓ in a line's text box moves to the next line; PgDn to the next image.
    tab.locator(".svtr-ed .svtr-line").nth(0).locator("textarea").click()
    tab.keyboard.press("ArrowDown")
    wait_until(lambda: "cur" in (tab.locator(".svtr-ed .svtr-line").nth(1).get_attribute("class") or "").split(),
               what="the second line to become current")
    tab.keyboard.press("PageDown")
    wait_until(lambda: "image 2 of 2" in status(tab), what="the next image")
    tab.wait_for_selector(".svtr-ed .svtr-overlay polygon.svtr-quad")
    tab.screenshot(path=str(ARTIFACTS / "04-next-image.png"), full_page=True)

    # The review queue below: every line of both pages as a card; a correction there is stored.
    cards = tab.locator(".svtr-q .svtr-q-card")
    with Store(lab["store"]) as store:
        n_lines = sum(len(store.current_page(i).regions) for i in store.image_ids())
    wait_until(lambda: cards.count() == min(n_lines, 40), what="the queue's cards (40 a page)")
    card = cards.last
    card.scroll_into_view_if_needed()
    key = card.get_attribute("data-key")
    card.locator("textarea").click()
    tab.keyboard.press("Control+A")
    tab.keyboard.type("fixed in the queue")
    tab.keyboard.press("Enter")
    q_image, q_region = int(key.split("/")[0]), key.split("/", 1)[1]
    with Store(lab["store"]) as store:
        wait_until(lambda: {r.id: r.text for r in store.current_page(q_image).regions}[q_region] == "fixed in the queue",
                   what="the queue's correction in the store")
    tab.locator(".svtr-q").first.screenshot(path=str(ARTIFACTS / "05-queue.png"))


def test_explore_notebook_shows_thumbnails_and_opens_the_editor(lab, page):
    tab = page
    tab.goto(lab["explore_url"])
    tab.wait_for_selector(f"{ACTIVE} .jp-Notebook .jp-Cell", timeout=90_000)
    wait_until(lambda: tab.locator(".lm-TabBar-tab.lm-mod-current", has_text="01_preannotate").count() > 0, what="the notebook's tab")
    start_all_cells(tab)
    thumbs = tab.locator(".svtr-browser .widget-image")
    tab.wait_for_selector(".svtr-browser .widget-image", timeout=180_000)
    with Store(lab["store"]) as store:
        n_images = len(store.image_ids())
    wait_until(lambda: thumbs.count() == n_images, what="one thumbnail per image")
    box = thumbs.first.bounding_box()
    assert box and box["width"] > 50 and box["height"] > 50
    assert tab.locator(".svtr-browser svg rect").count() == 10  # the score histogram's bins
    browser = tab.locator(".svtr-browser").first
    browser.scroll_into_view_if_needed()
    browser.screenshot(path=str(ARTIFACTS / "06-browser.png"))
    # Another reviewer marks an image reviewed: the counts follow by themselves (the browser polls the store).
    summary = browser.locator(".widget-html", has_text="store:").first
    assert "reviewed 0" in summary.inner_text()
    with Store(lab["store"]) as store:
        store.set_image_state(store.image_ids()[-1], "reviewed", who="someone-else")
    wait_until(lambda: "reviewed 1" in summary.inner_text(), timeout=20, what="the browser to show another reviewer's change")
    browser.locator("button", has_text="open").first.click()
    tab.wait_for_selector(".svtr-browser .svtr-ed .svtr-overlay polygon.svtr-quad", timeout=60_000)
    tab.screenshot(path=str(ARTIFACTS / "07-browser-opened-editor.png"), full_page=True)
