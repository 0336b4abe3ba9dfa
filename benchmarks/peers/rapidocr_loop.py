"""RapidOCR's own pipeline with its defaults (PP-OCRv6 small det + rec ONNX models shipped in the
rapidocr 3.10 wheel, its 0/180 classifier on, its text score threshold 0.5), in a loop over the pages.

    .venv-rapidocr/bin/python rapidocr_loop.py PAGES_DIR OUT.json [--no-cls]

Runs in its own virtual environment (benchmarks/bench_startup.py creates .venv-rapidocr): rapidocr
pulls opencv-python-headless, which would replace the opencv-contrib-python PaddleX needs in .venv.
Writes {"pages": {file name: [[quad, text], ...]}, "models": [...]}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("pages", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--no-cls", action="store_true", help="switch off the 0/180 text-line classifier")
    args = ap.parse_args()

    from rapidocr import RapidOCR

    params = {"Global.log_level": "warning"}  # its info lines go to stderr, not timed apart
    if args.no_cls:
        params["Global.use_cls"] = False
    engine = RapidOCR(params=params)
    pages = {}
    for path in sorted(args.pages.glob("*.png")):
        result = engine(str(path))
        boxes = [] if result.boxes is None else result.boxes.tolist()
        pages[path.name] = [[box, text] for box, text in zip(boxes, result.txts or ())]
    models = [f"{m.ocr_version.value}_{m.task_type.value}_{m.model_type.value}" for m in (engine.cfg.Det, engine.cfg.Rec)]
    args.out.write_text(json.dumps({"pages": pages, "models": models}, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
