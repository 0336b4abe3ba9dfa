"""`svtr-label export`: a store file or Label Studio JSON export -> a training set folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from svtr_label.cli.options import (
    add_label_studio_options,
    progress_bar,
    with_label_studio_options,
)
from svtr_label.dataset.formats import (
    EXIT_INVALID,
    EXIT_REPORTED,
    FORMATS,
    ON_INVALID,
    ExportOptions,
    run_export,
)
from svtr_label.dataset.target import rec_target
from svtr_label.dataset.validate import DEFAULT_MAX_TEXT_LENGTH
from svtr_label.labelstudio.sources import ImageSource
from svtr_label.services import Services
from svtr_label.settings import PROFILE_NAMES
from svtr_label.store import open_input


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="export corrected labels for retraining (PaddleOCR, PaddleX, ICDAR 2015, Label Studio)",
        description="Invalid samples: 'fail' (default) writes nothing and exits 1; 'drop' leaves them out, lists them "
        "and exits 0; 'report' leaves them out, lists them and exits 3. Invalid samples are always printed; "
        "with drop/report they are also listed in manifest.json.",
    )
    p.add_argument("input", metavar="INPUT", help="svtr-label store file, or a Label Studio JSON export")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", required=True, help="folder to write (replaced atomically when it holds an earlier export)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of images for validation (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val split (default 0)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dict", type=Path, help="dictionary file of the model to fine-tune (copied to dict.txt byte for byte)")
    src.add_argument("--rec-model-dir", type=Path, help="PaddleX recognition model folder whose dictionary to use")
    src.add_argument("--profile", choices=PROFILE_NAMES, help="use the dictionary of this profile's recognizer")
    src.add_argument("--train-config", type=Path, help="the PaddleOCR rec training config you will fine-tune with: its dictionary, "
                     "use_space_char and max_text_length (minus the NRTR/SAR start and end tokens)")
    p.add_argument("--max-text-length", type=int,
                   help=f"longest text the model accepts (default: from --train-config, else {DEFAULT_MAX_TEXT_LENGTH}: ch_SVTRv2_rec, PP-OCRv5)")
    p.add_argument("--on-invalid", choices=ON_INVALID, default="fail", help="what to do with invalid samples (default fail)")
    p.add_argument("--include-predictions", action="store_true", help="also export images nobody corrected, as predicted")
    p.add_argument("--root", type=Path, help="folder /data/local-files/?d= refs are relative to (default LOCAL_FILES_DOCUMENT_ROOT, else cwd)")
    add_label_studio_options(p)  # to download images Label Studio serves (uploads, cloud storage)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace, services: Services) -> int:
    settings = with_label_studio_options(services.settings, args)
    target = rec_target(dict_file=args.dict, rec_model_dir=args.rec_model_dir, train_config=args.train_config,
                        profile=services.with_settings(settings).profile(args.profile) if args.profile else None)
    if target.characters is None and args.format in ("paddleocr",):
        print("svtr-label: warning: no --dict / --rec-model-dir / --profile / --train-config: characters are not checked against a dictionary", file=sys.stderr)
    root = args.root or settings.label_studio.document_root
    bar = progress_bar(args, unit="image", desc=f"exporting {args.format}")
    opts = ExportOptions(
        format=args.format, out=Path(args.out), val_fraction=args.val_fraction, seed=args.seed,
        rules=target.rules(args.max_text_length), dict_bytes=target.dict_bytes, dict_source=target.source,
        on_invalid=args.on_invalid, include_predictions=args.include_predictions, root=root,
        images=ImageSource(root, fetch_settings=settings.fetch),
        progress=_advance(bar),
    )
    store = open_input(args.input, root=opts.root)
    try:
        result = run_export(store, opts)
    finally:
        bar.close()
        store.close()
    if not result.report.ok:
        verb = {"fail": "nothing written", "drop": "left out", "report": "left out"}[args.on_invalid]
        print(f"svtr-label: {len(result.report)} invalid samples ({verb}):\n{result.report.table()}", file=sys.stderr)
    if result.exit_code == EXIT_INVALID:
        print("svtr-label: fix them, or rerun with --on-invalid drop|report to export the valid ones", file=sys.stderr)
        return EXIT_INVALID
    counts = result.manifest["counts"]
    print(f"{args.format}: {result.path}\n" + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return EXIT_REPORTED if result.exit_code == EXIT_REPORTED else 0


def _advance(bar: Any) -> Callable[[int, int], None]:
    """ExportOptions.progress for a tqdm bar: the total is known once the samples are collected."""

    def report(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return report
