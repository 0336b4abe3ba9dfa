"""`svtr-label eval`: predictions against corrected truth, per image and per model_version; several
prediction sets (files, and profiles run now on the truth's images and timed) side by side."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from svtr_label.cli.options import progress_bar, write_json_atomic
from svtr_label.dataset.compare import (
    Comparison,
    PredictionSet,
    compare_models,
    format_comparison,
    open_prediction_set,
    plot_comparison,
    require_corrected,
    run_profile,
)
from svtr_label.dataset.evaluate import format_table
from svtr_label.errors import DatasetError, SvtrLabelError, UsageError, exit_code_for
from svtr_label.services import Services
from svtr_label.settings import PROFILE_NAMES
from svtr_label.store import Store, open_input

MAX_LISTED = 10  # unreadable images printed per set; --json lists them all


def add_parser(sub: Any) -> None:
    p = sub.add_parser("eval", help="accuracy, edit distance and detection scores of predictions against corrected truth; several models side by side")
    p.add_argument("--truth", required=True, help="store file or Label Studio JSON export holding the corrected pages")
    p.add_argument("--pred", action="append", default=[],
                   help="store file, Label Studio JSON export or `svtr-label predict` tasks file; repeat to compare "
                        "several (each model_version inside one is compared too)")
    p.add_argument("--profile", action="append", default=[], choices=PROFILE_NAMES,
                   help="run this model profile now on the truth's images and time it (seconds per page); repeatable")
    p.add_argument("--json", help="write the full result (per set, per model, per image, errors) as JSON")
    p.add_argument("--plot", help="write accuracy/coverage vs confidence of every compared model as one PNG")
    p.add_argument("--root", type=Path, help="folder /data/local-files/?d= refs are relative to (to hash and read the images)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while a profile runs")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace, services: Services) -> int:
    if not args.pred and not args.profile:
        raise UsageError("nothing to evaluate: pass --pred FILE (repeatable) and/or --profile NAME (repeatable)")
    root = args.root or services.settings.label_studio.document_root
    truth = open_input(args.truth, root=root)
    sets: list[PredictionSet] = []
    try:
        require_corrected(truth, args.truth)  # before any profile spends minutes on nothing
        sets = [open_prediction_set(path, root, name) for path, name in zip(args.pred, set_names(args.pred))]
        sets += [_profile_set(truth, profile, services, root, args) for profile in dict.fromkeys(args.profile)]
        result = compare_models(truth, sets, truth_name=args.truth)
    finally:
        for s in sets:
            if s.store is not None:
                s.store.close()
        truth.close()
    _report(result)
    if result.models:
        if args.json:
            write_json_atomic(Path(args.json), result.to_dict())
        if args.plot:
            plot_comparison(result, Path(args.plot))
    # A set that could not be compared fails alone, but the command says so in its exit code.
    return exit_code_for(DatasetError()) if result.failures else 0


def set_names(paths: Sequence[str]) -> list[str]:
    """Each file's name, or the path as given where two files share a name."""
    names = [Path(p).name for p in paths]
    return [n if names.count(n) == 1 else p for n, p in zip(names, paths)]


def _profile_set(truth: Store, profile: str, services: Services, root: Path | None, args: argparse.Namespace) -> PredictionSet:
    name = f"profile {profile}"
    try:
        started = time.perf_counter()
        engine = services.engine(profile)
        # Only a build that loaded the models counts as loading (a profile with downloaded weights).
        build_seconds = time.perf_counter() - started if engine.loaded else 0.0
        with progress_bar(args, total=len(require_corrected(truth)), desc=name, unit="page") as bar:
            return run_profile(truth, engine, services.image_source(root), name=name, on_page=bar.update,
                               build_seconds=build_seconds)
    except SvtrLabelError as exc:  # e.g. its weights cannot be loaded here: this profile fails alone
        return PredictionSet.failed(name, f"{name}: {exc}")


def _report(result: Comparison) -> None:
    """The tables on stdout; on stderr, what was left out and why."""
    evaluated = [s for s in result.sets if s.evaluation is not None]
    if len(result.sets) == 1 and evaluated:
        # One set: its per-image tables, as before; the side-by-side row adds timing or versions.
        only = evaluated[0]
        print(format_table(only.evaluation))  # type: ignore[arg-type]
        if only.timing or len(result.models) > 1:
            print(format_comparison(result, failures=False))
    elif result.models:
        print(format_comparison(result, failures=False))
        print("per image and every wrong line: --json")
    for s in result.sets:
        prefix = "" if len(result.sets) == 1 else f"{s.name}: "
        if s.evaluation is not None and s.evaluation.pred_images_without_truth:
            print(f"{prefix}{s.evaluation.pred_images_without_truth} predicted images have no corrected truth: not counted", file=sys.stderr)
        if s.unreadable:
            print(f"{s.name}: {len(s.unreadable)} truth images could not be read, not counted:", file=sys.stderr)
            for line in s.unreadable[:MAX_LISTED]:
                print(f"  {line}", file=sys.stderr)
            if len(s.unreadable) > MAX_LISTED:
                print(f"  ... and {len(s.unreadable) - MAX_LISTED} more (--json lists them all)", file=sys.stderr)
        if s.error:
            print(f"svtr-label eval: error: {s.error}", file=sys.stderr)
