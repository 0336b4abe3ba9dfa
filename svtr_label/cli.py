"""`svtr-label`: pre-annotate, list models, print the labeling config (and the commands other
modules register: export, eval, push, pull).

Each command module exposes `add_parser(subparsers)` and sets `func` on its parser; `main`
dispatches. A command returns its exit code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .options import add_profile_options, engine_from_args, progress_bar, write_json_atomic

# Modules that add subcommands; each must define add_parser(subparsers).
COMMAND_MODULES: list[str] = [
    "svtr_label.export.cli",
    "svtr_label.evaluate",
    "svtr_label.push",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .labelstudio import ConfigError
    from .profiles import ModelError

    try:
        return int(args.func(args) or 0)
    except (ModelError, ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"svtr-label: error: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svtr-label", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the pipeline does")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_predict(sub)
    _add_models(sub)
    _add_config(sub)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency, not a module not written yet
                raise
            continue
        module.add_parser(sub)
    return parser


# --- predict ---------------------------------------------------------------------------------


def _add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="pre-annotate images into a Label Studio tasks file")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument("-o", "--output", default="tasks.json", help="tasks file to write (default tasks.json)")
    add_profile_options(p)
    p.add_argument("--label-config", help="labeling config XML to write results for (default: the recommended OCR config)")
    p.add_argument("--shape", choices=["polygon", "rectangle"], default="polygon", help="region shape to emit (default polygon)")
    p.add_argument(
        "--image-ref",
        choices=["local-files", "prefix", "path"],
        default="local-files",
        help="how data.image is written: Label Studio local files (/data/local-files/?d=...), URL prefix, or the path",
    )
    p.add_argument("--root", help="document root that image paths are made relative to (default: LOCAL_FILES_DOCUMENT_ROOT or the current folder)")
    p.add_argument("--url-prefix", default="", help="URL prefix for --image-ref prefix")
    p.add_argument("--no-cache", action="store_true", help="ignore and do not fill the prediction cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from .annotate import annotate_files
    from .cache import PredictionCache
    from .images import find_images
    from .labelstudio import ImageRef, load_config, make_task

    config = load_config(args.label_config)
    if args.image_ref == "prefix" and not args.url_prefix:
        raise ValueError("--image-ref prefix needs --url-prefix (e.g. https://files.example.com/ocr/)")
    root = args.root or os.environ.get("LOCAL_FILES_DOCUMENT_ROOT")
    image_ref = ImageRef(args.image_ref, Path(root) if root else None, args.url_prefix)
    paths = find_images(args.paths)
    if not paths:
        print("svtr-label: error: no image files found in " + " ".join(args.paths), file=sys.stderr)
        return 1
    refs = {p: image_ref(p) for p in paths if p.exists()}  # fail before the long part, not after it
    if args.image_ref == "local-files" and any("/" not in r.split("?d=", 1)[1] for r in refs.values()):
        print(
            "svtr-label: warning: some images lie directly in the document root; Label Studio serves local files "
            "only from a storage folder below LOCAL_FILES_DOCUMENT_ROOT: pass --root the parent folder",
            file=sys.stderr,
        )
    engine = engine_from_args(args)
    cache = None if args.no_cache else PredictionCache.default()

    tasks, failures, hits, lines = [], [], 0, 0
    bar = progress_bar(args, total=len(paths), unit="img", desc="pre-annotating")
    for outcome in annotate_files(paths, engine, cache):
        bar.update(1)
        if outcome.page is None:
            failures.append(outcome.error or str(outcome.path))
            bar.write(f"skipped: {outcome.error}", file=sys.stderr)
            continue
        hits += outcome.cached
        lines += len(outcome.page.regions)
        tasks.append(make_task(outcome.page, refs[outcome.path], config, args.shape))
    bar.close()
    if not tasks:
        print(f"svtr-label: error: none of the {len(paths)} files could be processed", file=sys.stderr)
        return 1
    out = Path(args.output)
    write_json_atomic(out, tasks)
    print(
        f"{len(tasks)} images, {lines} text lines ({hits} from cache), {len(failures)} skipped; "
        f"model {engine.model_version}\nLabel Studio tasks: {out.resolve()}"
    )
    return 0


# --- models / config -------------------------------------------------------------------------


def _add_models(sub: Any) -> None:
    p = sub.add_parser("models", help="list model profiles, or lay out the bundled model folders")
    p.add_argument("action", nargs="?", choices=["list", "prepare"], default="list")
    p.add_argument("profile", nargs="?", default="bundled", help="profile to prepare (only 'bundled' is laid out locally)")
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from .profiles import PROFILE_NAMES, ModelError, bundled_model_dirs, resolve_profile

    if args.action == "prepare":
        if args.profile != "bundled":
            raise ModelError(
                f"only the bundled profile is laid out by svtr-label; {args.profile!r} models come from PaddleOCR's "
                "download or from the folders you point SVTR_DET_MODEL_DIR / SVTR_REC_MODEL_DIR at"
            )
        det, rec = bundled_model_dirs(create=True)
        print(f"bundled det: {det}\nbundled rec: {rec}")
        return 0
    for name in PROFILE_NAMES:
        try:
            info: Any = resolve_profile(name).describe()
        except ModelError as exc:
            info = {"profile": name, "unavailable": str(exc)}
        print(json.dumps(info, ensure_ascii=False, indent=2))
    return 0


def _add_config(sub: Any) -> None:
    p = sub.add_parser("config", help="print the recommended Label Studio labeling config")
    p.set_defaults(func=cmd_config)


def cmd_config(args: argparse.Namespace) -> int:
    from .labelstudio import recommended_config

    print(recommended_config(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
