"""`svtr-label export`: a store file or Label Studio JSON export -> a training set folder."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable

from ..validate import DEFAULT_MAX_TEXT_LENGTH, RecTarget, load_dictionary
from .core import ExportError
from .formats import EXIT_INVALID, EXIT_REPORTED, FORMATS, ON_INVALID, ExportOptions, run_export


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
    src.add_argument("--dict", help="dictionary file of the model to fine-tune (copied to dict.txt byte for byte)")
    src.add_argument("--rec-model-dir", help="PaddleX recognition model folder whose dictionary to use")
    src.add_argument("--profile", choices=["svtrv2", "bundled", "custom"], help="use the dictionary of this profile's recognizer")
    src.add_argument("--train-config", help="the PaddleOCR rec training config you will fine-tune with: its dictionary, "
                     "use_space_char and max_text_length (minus the NRTR/SAR start and end tokens)")
    p.add_argument("--max-text-length", type=int,
                   help=f"longest text the model accepts (default: from --train-config, else {DEFAULT_MAX_TEXT_LENGTH}: ch_SVTRv2_rec, PP-OCRv5)")
    p.add_argument("--on-invalid", choices=ON_INVALID, default="fail", help="what to do with invalid samples (default fail)")
    p.add_argument("--include-predictions", action="store_true", help="also export images nobody corrected, as predicted")
    p.add_argument("--root", help="folder /data/local-files/?d= refs are relative to (default LOCAL_FILES_DOCUMENT_ROOT, else cwd)")
    p.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL"),
                   help="Label Studio URL, to download images it serves (uploads, cloud storage) (env LABEL_STUDIO_URL)")
    p.add_argument("--api-key", default=os.environ.get("LABEL_STUDIO_API_KEY"), help="Label Studio access token (env LABEL_STUDIO_API_KEY)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_export)


def resolve_target(args: argparse.Namespace) -> RecTarget:
    """The dictionary (and, from a training config, the longest text) of --dict, --rec-model-dir,
    --profile or --train-config; an empty RecTarget when none is given."""
    if args.train_config:
        from ..trainconfig import read_train_config

        return read_train_config(args.train_config)
    if args.dict:
        path = Path(args.dict)
        if not path.is_file():
            raise ExportError(f"--dict {path}: no such file")
        return RecTarget(path.read_bytes(), tuple(load_dictionary(path)), source=path.name)
    folder = None
    if args.rec_model_dir:
        folder = Path(args.rec_model_dir)
    elif args.profile:
        from ..profiles import resolve_profile

        folder = resolve_profile(args.profile).rec.dir
        if folder is None:
            raise ExportError(
                f"profile {args.profile!r} has no local recognition folder (SVTR_REC_MODEL_DIR): pass --dict with the "
                "model's dictionary file (ppocr_keys_v1.txt for ch_SVTRv2_rec), or --train-config"
            )
    if folder is None:
        return RecTarget()
    from ..profiles import dictionary_of, model_name_of

    chars = dictionary_of(folder)
    # inference.yml lists the space PaddleOCR appends (use_space_char); the dictionary file does not.
    listed = chars[:-1] if chars and chars[-1] == " " else chars
    return RecTarget("".join(c + "\n" for c in listed).encode("utf-8"), tuple(chars), source=model_name_of(folder, "rec"))


def cmd_export(args: argparse.Namespace) -> int:
    from ..options import progress_bar
    from ..sources import ImageSource
    from ..store import open_input

    target = resolve_target(args)
    if target.characters is None and args.format in ("paddleocr",):
        print("svtr-label: warning: no --dict / --rec-model-dir / --profile / --train-config: characters are not checked against a dictionary", file=sys.stderr)
    root = args.root or os.environ.get("LOCAL_FILES_DOCUMENT_ROOT")
    bar = progress_bar(args, unit="image", desc=f"exporting {args.format}")
    opts = ExportOptions(
        format=args.format, out=Path(args.out), val_fraction=args.val_fraction, seed=args.seed,
        rules=target.rules(args.max_text_length), dict_bytes=target.dict_bytes, dict_source=target.source,
        on_invalid=args.on_invalid, include_predictions=args.include_predictions, root=Path(root) if root else None,
        images=ImageSource(Path(root) if root else None, ls_url=args.url, api_key=args.api_key),
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
