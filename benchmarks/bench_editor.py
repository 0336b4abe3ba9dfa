"""Review editor latency in a real JupyterLab and Debian's Chromium: key press -> updated screen.

Not a test (timings belong here, not in asserts). Starts JupyterLab on 127.0.0.1 in a temp folder,
opens a notebook whose editor shows a 300-dpi A4 page (2480x3508, 29 lines: the page of
tests/test_editor_browser.py), presses keys the way a reviewer does (one at a time, `--gap` ms
apart) and reads the editor's own timings (window.svtrEditorTimings):

  screen   keydown event -> the frame showing the result was painted (rAF + task after it)
  kernel   keydown event -> the kernel's confirmation applied and painted (commands the kernel
           handles: Enter writes the store; line moves tell it the current line; nudges are sent
           400 ms after the last one, so their kernel time is not a latency and is not reported)

    .venv/bin/python benchmarks/bench_editor.py [--n 20] [--gap 250] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

CHROMIUM = os.environ.get("SVTR_CHROMIUM", "/usr/bin/chromium")


def start_lab(root: Path) -> tuple[subprocess.Popen, str, str]:
    from conftest import free_port, wait_for_http

    config = root / ".jupyter-config"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text('{"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": true}}')
    token, port = secrets.token_hex(16), free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(root / ".rt")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={root / '.ws'}",
           f"--LabApp.user_settings_dir={root / '.settings'}", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(root / "lab.log", "w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/api/status?token={token}", proc, "JupyterLab", lambda: (root / "lab.log").read_text()[-2000:])
    return proc, base, token


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return f"median {statistics.median(values):6.1f} ms  p90 {p90:6.1f} ms  (n={len(values)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20, help="presses per key")
    ap.add_argument("--gap", type=int, default=250, help="ms between presses")
    ap.add_argument("--json", type=Path, help="write the raw timings here")
    args = ap.parse_args()

    import test_editor_browser as t
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="bench-editor-"))
    proc = None
    try:
        t.write_notebook(root / "bench.ipynb", root / "store" / "bench.sqlite", "bench", big=True, engine=False)
        proc, base, token = start_lab(root)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
            tab = browser.new_page(viewport={"width": 1600, "height": 1100})
            tab.set_default_timeout(120_000)
            t0 = time.perf_counter()
            t.open_editor(tab, f"{base}/lab/tree/bench.ipynb?token={token}")
            t.settled(tab)
            opened = time.perf_counter() - t0
            d = t.dbg(tab)
            assert "a4_scan.png" in d["status"], d["status"]
            tab.evaluate("() => { window.svtrEditorTimings.length = 0; }")
            gap = args.gap / 1000

            def press(key: str, n: int, settle: bool = False) -> None:
                for _ in range(n):
                    tab.keyboard.press(key)
                    time.sleep(gap)
                    if settle:
                        t.settled(tab)

            t.focus_line(tab, d["ids"][0])
            press("Enter", args.n, settle=True)  # accept, the next unchecked line opens
            press("ArrowDown", args.n // 2)
            press("ArrowUp", args.n // 2)
            press("Tab", args.n // 2)
            t.settled(tab)
            tab.keyboard.press("Alt+KeyP")  # the keyboard to the picture
            time.sleep(gap)
            for k in ("ArrowRight", "ArrowDown", "ArrowLeft", "ArrowUp"):
                press(k, args.n // 4)
            time.sleep(1)
            t.settled(tab)
            tab.keyboard.press("Escape")
            time.sleep(gap)
            t.settled(tab)
            press("PageDown", 1, settle=True)
            press("PageUp", 1, settle=True)
            time.sleep(1)
            timings = tab.evaluate("() => window.svtrEditorTimings.map(x => ({cmd: x.cmd, screen: x.local, kernel: x.kernel}))")
            browser.close()
        rows = {}
        for x in timings:
            rows.setdefault(x["cmd"], []).append(x)
        print(f"editor on a 2480x3508 page, 29 lines; opened in {opened:.1f} s (kernel start, store, page image)")
        print(f"key -> updated screen, Chromium {CHROMIUM}, one key every {args.gap} ms:")
        for cmd in ("accept", "next_line", "prev_line", "nudge", "next_image", "prev_image"):
            got = rows.get(cmd, [])
            if cmd not in ("next_image", "prev_image"):  # a new image shows once the kernel sent it
                print(f"  {cmd:<11} screen {summary([x['screen'] for x in got if x['screen'] is not None])}")
            if cmd in ("accept", "next_image", "prev_image"):
                print(f"  {cmd if cmd != 'accept' else '':<11} kernel {summary([x['kernel'] for x in got if x['kernel'] is not None])}")
        if args.json:
            args.json.write_text(json.dumps({"opened_s": opened, "timings": timings}, indent=1))
        return 0
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
