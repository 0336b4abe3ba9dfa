"""`svtr-label eval`: predictions against corrected truth, per image and per model_version."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from svtr_label.cli.options import write_json_atomic
from svtr_label.dataset.evaluate import evaluate, format_table, plot
from svtr_label.services import Services
from svtr_label.store import open_input


def add_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="accuracy, edit distance and detection scores of predictions against corrected truth")
    p.add_argument("--truth", required=True, help="store file or Label Studio JSON export holding the corrected pages")
    p.add_argument("--pred", required=True, help="store file, Label Studio JSON export or `svtr-label predict` tasks file")
    p.add_argument("--json", help="write the full result (per image, per model_version, errors) as JSON")
    p.add_argument("--plot", help="write accuracy/coverage vs confidence as a PNG")
    p.add_argument("--root", type=Path, help="folder /data/local-files/?d= refs are relative to (to hash the images)")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace, services: Services) -> int:
    root = args.root or services.settings.label_studio.document_root
    truth, pred = open_input(args.truth, root=root), open_input(args.pred, root=root)
    try:
        result = evaluate(truth, pred)
    finally:
        truth.close()
        pred.close()
    print(format_table(result))
    if result.pred_images_without_truth:
        print(f"{result.pred_images_without_truth} predicted images have no corrected truth: not counted", file=sys.stderr)
    if args.json:
        write_json_atomic(Path(args.json), result.to_dict())
    if args.plot:
        plot(result, Path(args.plot))
    return 0
