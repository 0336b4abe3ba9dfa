"""Whole-process speed, model loading counted: `svtr-label predict` against a plain PaddleOCR loop
and RapidOCR's own pipeline, on the same generated pages.

    .venv/bin/python benchmarks/bench_startup.py                 # 1, 16 and 50 pages, best of 2 runs; ~15 min on 2 cores
    .venv/bin/python benchmarks/bench_startup.py --pages 1 16 --runs 3

Each run is a fresh process that loads its models, reads every page and writes its output:
- svtr-label: `svtr-label predict DIR --profile bundled --no-cache` (a tasks file);
- PaddleOCR loop: benchmarks/peers/paddleocr_loop.py, one `PaddleOCR` on the bundled model folders
  (the very files svtr-label runs, subnormal weights at zero) with the bundled profile's detector
  sizing, `predict` on each page (as a user would write it);
- the same PaddleOCR loop on the wheel's ONNX files as shipped (subnormal weights kept): a plain
  loop as a user without svtr-label would run these weights;
- RapidOCR: benchmarks/peers/rapidocr_loop.py, `RapidOCR()` with its defaults (its PP-OCRv6 small
  det + rec, the weights the bundled profile lays out, as its wheel ships them: subnormal weights
  kept), called on each page.
Each tool first reads one page untimed (warm file cache, as on any second use); then rounds run every
tool at every page count in turn, the tools' order rotating from round to round, so the machine's
drift hits all alike. Ratios are given of the best runs and, steadier on a shared machine, as the
median of each round's ratio of runs made back to back. Steady state is the marginal rate between
the two largest counts (loading cancels out), each round's, then the median.
Exact-line accuracy (benchmarks/bench.py's line_accuracy) is scored on the largest count's output.

One-time step: RapidOCR runs in its own virtual environment, .venv-rapidocr (created on first use:
`python -m venv .venv-rapidocr && .venv-rapidocr/bin/pip install rapidocr==3.10.0 onnxruntime`).
rapidocr pulls opencv-python-headless, which would replace the opencv-contrib-python PaddleX needs in .venv.

Prints times, ratios and targets and writes them under "startup" in benchmarks/results.json
(other keys kept).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import line_accuracy, shipped_model_dirs  # noqa: E402
from svtr_label.core.synth import SynthPage, write_dataset  # noqa: E402
from svtr_label.labelstudio.format import results_to_regions  # noqa: E402
from svtr_label.ocr.onnxfile import flush_subnormal_weights  # noqa: E402
from svtr_label.ocr.profiles import Profile, bundled_model_dirs, model_name_of  # noqa: E402
from svtr_label.services import Services  # noqa: E402

RAPIDOCR = "rapidocr==3.10.0"
RAPIDOCR_VENV = REPO / ".venv-rapidocr"
PEERS = Path(__file__).resolve().parent / "peers"
SVTR = "svtr-label"
PLAIN = "paddleocr_loop"
SHIPPED = "paddleocr_loop_shipped"
RAPID = "rapidocr"
TARGETS = {  # (measure, comparison, goal)
    "whole_process_vs_paddleocr_16": (">=", 1.25),
    "whole_process_vs_paddleocr_16_paired_median": (">=", 1.25),
    "steady_state_vs_paddleocr": (">=", 1.25),
    "whole_process_vs_paddleocr_shipped_16": (">=", 1.25),
    "whole_process_vs_paddleocr_shipped_16_paired_median": (">=", 1.25),
    "whole_process_vs_rapidocr_16": (">=", 1.0),
    "whole_process_vs_rapidocr_16_paired_median": (">=", 1.0),
    "whole_process_vs_rapidocr_50": (">=", 1.0),
    "whole_process_vs_rapidocr_50_paired_median": (">=", 1.0),
    "accuracy_minus_rapidocr": (">=", 0.0),
}
Lines = list[list[tuple[list, str]]]


@dataclass(frozen=True)
class Tool:
    name: str
    command: Callable[[Path, Path], list[str]]  # (pages folder, output file) -> argv
    read: Callable[[Path, list[SynthPage]], Lines]  # (output file, pages) -> lines of each page


def quiet_env() -> dict[str, str]:
    """Offline and silent for every tool alike: no model-host probe (PaddleX), no telemetry lookups
    (ONNX Runtime); svtr-label sets both itself, the peers would otherwise wait on the network."""
    return {**os.environ, "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True", "ORT_DISABLE_TELEMETRY": "1"}


# --- the four tools ---------------------------------------------------------------------------


def svtr_tool() -> Tool:
    exe = str(Path(sys.executable).with_name("svtr-label"))

    def command(pages: Path, out: Path) -> list[str]:
        return [exe, "predict", str(pages), "--profile", "bundled", "--no-cache", "--no-progress", "--image-ref", "path", "-o", str(out)]

    def read(out: Path, truth: list[SynthPage]) -> Lines:
        by_name = {}
        for task in json.loads(out.read_text(encoding="utf-8")):
            regions = results_to_regions(task["predictions"][0]["result"])
            by_name[Path(task["data"]["image"]).name] = [(list(r.points), r.text) for r in regions]
        return [by_name.get(p.name, []) for p in truth]

    return Tool(SVTR, command, read)


def plain_tool(profile: Profile, folders: tuple[Path, Path] | None = None, name: str = PLAIN) -> Tool:
    """The bundled folders (bundled_model_dirs, or `folders`), their model names, and the profile's detector sizing."""
    det, rec = folders or bundled_model_dirs(Services.from_env().settings.models_dir)
    sizing = {"--det-limit-side-len": profile.det_limit_side_len, "--det-limit-type": profile.det_limit_type,
              "--det-max-side": profile.det_max_side_limit}
    args = ["--det-dir", str(det), "--det-name", model_name_of(det, "det"), "--rec-dir", str(rec), "--rec-name", model_name_of(rec, "rec")]
    args += [str(a) for k, v in sizing.items() if v is not None for a in (k, v)]

    def command(pages: Path, out: Path) -> list[str]:
        return [sys.executable, str(PEERS / "paddleocr_loop.py"), str(pages), str(out), *args]

    return Tool(name, command, read_peer)


def rapid_tool(python: Path, no_cls: bool) -> Tool:
    def command(pages: Path, out: Path) -> list[str]:
        return [str(python), str(PEERS / "rapidocr_loop.py"), str(pages), str(out), *(["--no-cls"] if no_cls else [])]

    return Tool(RAPID, command, read_peer)


def read_peer(out: Path, truth: list[SynthPage]) -> Lines:
    pages = json.loads(out.read_text(encoding="utf-8"))["pages"]
    return [[(quad, text) for quad, text in pages.get(p.name, [])] for p in truth]


def rapidocr_python(given: Path | None) -> Path:
    """The RapidOCR environment's interpreter; .venv-rapidocr is created the first time."""
    if given is not None:
        return given
    python = RAPIDOCR_VENV / "bin" / "python"
    if not python.exists():
        print(f"one-time: creating {RAPIDOCR_VENV.name} ({RAPIDOCR} and onnxruntime from PyPI)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(RAPIDOCR_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", RAPIDOCR, "onnxruntime"], check=True)
    return python


# --- running -----------------------------------------------------------------------------------


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_once(tool: Tool, pages: Path, out: Path) -> float:
    """Seconds from launch to exit of one fresh process."""
    start = time.perf_counter()
    proc = subprocess.run(tool.command(pages, out), env=quiet_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{tool.name} exited with {proc.returncode}:\n{proc.stderr[-3000:]}")
    return seconds


def page_sets(work: Path, counts: list[int], lines: int) -> tuple[list[SynthPage], dict[int, Path]]:
    """The largest count's pages, and a folder holding the first n of them for each count n."""
    pages = write_dataset(work / "all", max(counts), seed=5000, n_lines=lines)
    folders = {}
    for n in counts:
        folder = work / f"p{n}" / "pages"
        folder.mkdir(parents=True)
        for p in pages[:n]:
            os.link(work / "all" / p.name, folder / p.name)
        folders[n] = folder
    return pages, folders


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def same_weights_as_rapidocr(python: Path) -> bool | None:
    """Whether the bundled folders hold the ONNX files RapidOCR's environment runs, with their
    subnormal weights at zero as svtr-label lays them out (ocr/onnxfile.py)."""
    det, rec = bundled_model_dirs(Services.from_env().settings.models_dir)
    found = subprocess.run([str(python), "-c", "import rapidocr, pathlib; print(pathlib.Path(rapidocr.__file__).parent / 'models')"],
                           capture_output=True, text=True)
    models = Path(found.stdout.strip())
    if found.returncode != 0 or not models.is_dir():
        return None
    theirs = {hashlib.sha256(flush_subnormal_weights(f.read_bytes()).data).hexdigest() for f in models.glob("*.onnx")}
    return all(sha256_of(d / "inference.onnx") in theirs for d in (det, rec) if (d / "inference.onnx").is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, nargs="+", default=[1, 16, 50])
    ap.add_argument("--runs", type=int, default=2, help="timed runs of each tool at each count (the best counts)")
    ap.add_argument("--lines", type=int, default=22)
    ap.add_argument("--rapidocr-python", type=Path, help="an interpreter with rapidocr installed (default: .venv-rapidocr, created on first use)")
    ap.add_argument("--rapidocr-no-cls", action="store_true", help="RapidOCR without its 0/180 classifier (on by default in RapidOCR)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results.json"))
    args = ap.parse_args()
    counts = sorted(set(args.pages))

    profile = Services.from_env().profile("bundled")
    rapid_python = rapidocr_python(args.rapidocr_python)
    work = Path(tempfile.mkdtemp(prefix="svtr-startup-"))
    tools = [svtr_tool(), plain_tool(profile), plain_tool(profile, shipped_model_dirs(work), SHIPPED),
             rapid_tool(rapid_python, args.rapidocr_no_cls)]
    try:
        pages, folders = page_sets(work, counts, args.lines)
        model = f"{profile.det.name} + {profile.rec.name}"
        print(f"bundled profile: {model} (ONNX Runtime); pages of {args.lines} lines at {', '.join(map(str, counts))}; "
              f"{os.cpu_count()} cores; best of {args.runs}")
        for tool in tools:  # untimed: warms the file cache and fails early
            run_once(tool, folders[counts[0]], work / f"warm-{tool.name}.json")
        times: dict[str, dict[int, list[float]]] = {t.name: {n: [] for n in counts} for t in tools}
        loads = [loadavg()]  # the 1-minute load average before and after each run
        for r in range(args.runs):
            for n in counts:
                for tool in tools[r % len(tools):] + tools[: r % len(tools)]:
                    times[tool.name][n].append(run_once(tool, folders[n], work / f"{tool.name}-{n}.json"))
                    loads.append(loadavg())
                print(f"  round {r + 1}, {n} pages: " + ", ".join(f"{t} {v[n][-1]:.1f} s" for t, v in times.items()), flush=True)
        biggest = counts[-1]
        accuracy = {t.name: line_accuracy(pages[:biggest], t.read(work / f"{t.name}-{biggest}.json", pages[:biggest])) for t in tools}
        rapid_models = json.loads((work / f"{RAPID}-{biggest}.json").read_text(encoding="utf-8"))["models"]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    results = summarize(times, counts, accuracy)
    results.update({
        "model": model, "rapidocr_models": rapid_models, "rapidocr_same_weights": same_weights_as_rapidocr(rapid_python),
        "rapidocr_cls": not args.rapidocr_no_cls, "runs": args.runs, "lines_per_page": args.lines,
        "loadavg_1min": {"min": min(loads), "max": max(loads), "each": loads},
    })
    report(results)
    out = Path(args.out)
    everything = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    everything["startup"] = results
    out.write_text(json.dumps(everything, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwritten: {out} (key \"startup\")")
    return 0


def summarize(times: dict[str, dict[int, list[float]]], counts: list[int], accuracy: dict[str, float]) -> dict[str, Any]:
    best = {t: {n: min(v) for n, v in by_n.items()} for t, by_n in times.items()}
    r: dict[str, Any] = {"seconds_best": {t: {str(n): s for n, s in v.items()} for t, v in best.items()},
                         "seconds_all": {t: {str(n): s for n, s in v.items()} for t, v in times.items()},
                         "line_accuracy": accuracy}
    for n in counts:
        for peer, key in ((PLAIN, "paddleocr"), (SHIPPED, "paddleocr_shipped"), (RAPID, "rapidocr")):
            r[f"whole_process_vs_{key}_{n}"] = best[peer][n] / best[SVTR][n]
            r[f"whole_process_vs_{key}_{n}_paired_median"] = statistics.median(
                p / m for p, m in zip(times[peer][n], times[SVTR][n]))
    if len(counts) >= 2:
        lo, hi = counts[-2], counts[-1]

        def rate(t: str) -> float:
            per_round = [(hi - lo) / (b - a) for a, b in zip(times[t][lo], times[t][hi]) if b > a]
            return statistics.median(per_round) if per_round else float("nan")

        steady = {t: rate(t) for t in times}
        r["steady_state_img_s"] = {"between_pages": [lo, hi], **steady}
        r["steady_state_vs_paddleocr"] = steady[SVTR] / steady[PLAIN]
        r["steady_state_vs_paddleocr_shipped"] = steady[SVTR] / steady[SHIPPED]
        r["steady_state_vs_rapidocr"] = steady[SVTR] / steady[RAPID]
    r["accuracy_minus_rapidocr"] = accuracy[SVTR] - accuracy[RAPID]
    return r


def report(r: dict[str, Any]) -> None:
    best = r["seconds_best"]
    counts = list(best[SVTR])
    print(f"\nmodel: {r['model']} | RapidOCR: {' + '.join(r['rapidocr_models'])} "
          f"(same weights, subnormals at zero: {r['rapidocr_same_weights']}; its classifier {'on' if r['rapidocr_cls'] else 'off'})")
    print(f"load average (1 min) during the runs: {r['loadavg_1min']['min']:.2f} to {r['loadavg_1min']['max']:.2f}")
    print(f"\n{'pages':>5}  {'svtr-label':>10}  {'loop':>6}  {'loop, shipped files':>19}  {'RapidOCR':>9}  "
          f"{'vs loop':>7}  {'vs loop, shipped':>16}  {'vs RapidOCR':>11}   (best runs; median of paired runs)")
    for n in counts:
        ratios = [f"whole_process_vs_{k}_{n}" for k in ("paddleocr", "paddleocr_shipped", "rapidocr")]
        print(f"{n:>5}  {best[SVTR][n]:9.1f}s  {best[PLAIN][n]:5.1f}s  {best[SHIPPED][n]:18.1f}s  {best[RAPID][n]:8.1f}s  "
              + "  ".join(f"{r[k]:.2f}x ({r[k + '_paired_median']:.2f}x)" for k in ratios))
    if "steady_state_img_s" in r:
        s = r["steady_state_img_s"]
        lo, hi = s["between_pages"]
        print(f"steady state (img/s, pages {lo} to {hi}): svtr-label {s[SVTR]:.2f} | PaddleOCR loop {s[PLAIN]:.2f} | "
              f"loop, shipped files {s[SHIPPED]:.2f} | RapidOCR {s[RAPID]:.2f}")
    acc = r["line_accuracy"]
    print(f"exact-line accuracy: svtr-label {acc[SVTR]:.3f} | PaddleOCR loop {acc[PLAIN]:.3f} | "
          f"loop, shipped files {acc[SHIPPED]:.3f} | RapidOCR {acc[RAPID]:.3f}")
    print(f"\n{'measure':44} {'value':>8}  target")
    for key, (op, goal) in TARGETS.items():
        if key not in r:
            continue
        value = r[key]
        ok = value <= goal if op == "<=" else value >= goal
        print(f"{key:44} {value:8.3f}  {op} {goal}  {'ok' if ok else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
