"""A plain PaddleOCR script, as a user would write it: one pipeline, a loop over the pages.

    python paddleocr_loop.py PAGES_DIR OUT.json --det-dir D --det-name N --rec-dir R --rec-name M \
        [--det-limit-side-len L --det-limit-type T --det-max-side S]

benchmarks/bench_startup.py runs it as a fresh process (model loading counted) on the bundled model
folders with the bundled profile's detector sizing. It imports nothing of svtr-label.
Writes {"pages": {file name: [[quad, text], ...]}}.
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
    ap.add_argument("--det-dir", required=True)
    ap.add_argument("--det-name", required=True)
    ap.add_argument("--rec-dir", required=True)
    ap.add_argument("--rec-name", required=True)
    ap.add_argument("--det-limit-side-len", type=int)
    ap.add_argument("--det-limit-type")
    ap.add_argument("--det-max-side", type=int)
    args = ap.parse_args()

    from paddleocr import PaddleOCR

    sizing = {"text_det_limit_side_len": args.det_limit_side_len, "text_det_limit_type": args.det_limit_type}
    ocr = PaddleOCR(
        text_detection_model_name=args.det_name, text_detection_model_dir=args.det_dir,
        text_recognition_model_name=args.rec_name, text_recognition_model_dir=args.rec_dir,
        use_doc_orientation_classify=False, use_doc_unwarping=False, use_textline_orientation=False,
        text_rec_score_thresh=0.0, engine="onnxruntime", device="cpu",
        **{k: v for k, v in sizing.items() if v is not None},
    )
    if args.det_max_side:
        # PaddleOCR's constructor has no argument for it; PaddleX's pipeline reads this attribute.
        ocr.paddlex_pipeline._pipeline.text_det_max_side_limit = args.det_max_side
    pages = {}
    for path in sorted(args.pages.glob("*.png")):
        (res,) = ocr.predict(str(path))
        pages[path.name] = [[poly.tolist(), text] for poly, text in zip(res["rec_polys"], res["rec_texts"])]
    args.out.write_text(json.dumps({"pages": pages}, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
