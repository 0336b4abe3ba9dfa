"""Large-text sizing: seconds per page and exact lines on generated pages shown at several sizes,
with adaptive sizing (ocr/sizing.py) against PaddleOCR's one fixed sizing, on one pipeline.

    .venv/bin/python benchmarks/bench_sizing.py                       # bundled; 8 pages at 0.75x to 3x
    .venv/bin/python benchmarks/bench_sizing.py --factors 1 2 --pages 16 --profile bundled-v5

The generated pages are 900 px wide with lines 26 to 38 px tall (core/synth.py); a factor of 2 is the
same page scanned at twice the resolution. Prints, per factor, each sizing's seconds per page, exact
lines, and the detector input's long side on the pages (from the pipeline's own result).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")

import numpy as np  # noqa: E402

from bench import line_accuracy  # noqa: E402
from svtr_label.core.images import DecodedImage  # noqa: E402
from svtr_label.core.synth import make_page, scaled_page  # noqa: E402
from svtr_label.ocr import sizing  # noqa: E402
from svtr_label.services import Services  # noqa: E402
from svtr_label.settings import EngineSettings  # noqa: E402


def decoded(page) -> DecodedImage:
    rgb = np.asarray(page.image.convert("RGB"))
    return DecodedImage(bgr=np.ascontiguousarray(rgb[:, :, ::-1]), sha256=page.name, name=page.name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="bundled")
    ap.add_argument("--pages", type=int, default=8)
    ap.add_argument("--seed", type=int, default=7000)
    ap.add_argument("--factors", type=float, nargs="+", default=[0.75, 1.0, 1.5, 2.0, 3.0])
    ap.add_argument("--threads", type=int, default=2, help="inference threads of the one pipeline")
    args = ap.parse_args()
    services = Services.from_env()
    base = replace(services.settings.models, profile=args.profile)
    engines = {}
    for name, adaptive in (("adaptive", True), ("fixed", False)):
        engine = services.engine(replace(base, adaptive_sizing=adaptive), EngineSettings(workers=1, cpu_threads=args.threads))
        engines[name] = engine.load()
    max_side = engines["adaptive"].profile.det_max_side_limit or sizing.MAX_DET_SIDE
    originals = [make_page(args.seed + i, n_lines=22) for i in range(args.pages)]
    engines["fixed"].predict([decoded(originals[0])])  # warm both (first runs allocate)
    engines["adaptive"].predict([decoded(originals[0])])
    print(f"profile {args.profile}: {engines['adaptive'].model_version}; {args.pages} pages of 22 lines; one pipeline, "
          f"{args.threads} threads; load average {os.getloadavg()[0]:.2f}")
    print(f"{'factor':>6} {'page size':>11}  {'fixed s/page':>12} {'exact':>6}  {'adaptive s/page':>15} {'exact':>6}  "
          f"{'speed-up':>8}  detector long side (adaptive, median)")
    for factor in args.factors:
        pages = [scaled_page(p, factor) for p in originals]
        images = [decoded(p) for p in pages]
        row = {}
        for name, engine in engines.items():
            start = time.perf_counter()
            predicted = engine.predict(images)
            seconds = (time.perf_counter() - start) / len(pages)
            lines = [[(list(r.points), r.text) for r in page.regions] for page in predicted]
            row[name] = (seconds, line_accuracy(pages, lines))
        reduced = [sizing.large_text_sizing(im.bgr, max_side) for im in images]
        sides = [r.long_side if r else round(max(im.bgr.shape[:2]) * min(1.0, max_side / max(im.bgr.shape[:2]))) for r, im in zip(reduced, images)]
        w, h = pages[0].image.size
        print(f"{factor:6.2f} {w:>5}x{h:<5}  {row['fixed'][0]:12.2f} {row['fixed'][1]:6.3f}  {row['adaptive'][0]:15.2f} "
              f"{row['adaptive'][1]:6.3f}  {row['fixed'][0] / row['adaptive'][0]:7.2f}x  {statistics.median(sides):.0f} "
              f"({sum(r is not None for r in reduced)}/{len(pages)} pages reduced)", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
