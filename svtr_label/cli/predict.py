"""`svtr-label predict`: pre-annotate image files into a Label Studio tasks file."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from svtr_label.cli import scaleout
from svtr_label.cli.options import (
    add_profile_options,
    progress_bar,
    with_profile_options,
    write_json_atomic,
)
from svtr_label.core.images import find_images
from svtr_label.errors import UsageError
from svtr_label.labelstudio.format import load_config, make_task
from svtr_label.labelstudio.refs import ImageRef
from svtr_label.ocr.annotate import annotate_files
from svtr_label.services import Services


def add_parser(sub: Any) -> None:
    p = sub.add_parser("predict", help="pre-annotate images into a Label Studio tasks file")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image files or folders; with --ray also s3:// and gs:// prefixes and manifests (.txt, .jsonl, .parquet)")
    p.add_argument("-o", "--output", default="tasks.json", help="tasks file to write (default tasks.json); with --ray, a folder")
    add_profile_options(p)
    p.add_argument("--label-config", help="labeling config XML to write results for (default: the recommended OCR config)")
    p.add_argument("--shape", choices=["polygon", "rectangle"], default="polygon", help="region shape to emit (default polygon)")
    p.add_argument(
        "--image-ref",
        choices=["local-files", "prefix", "path"],
        default="local-files",
        help="how data.image is written: Label Studio local files (/data/local-files/?d=...), URL prefix, or the path",
    )
    p.add_argument("--root", type=Path, help="document root that image paths are made relative to (default: LOCAL_FILES_DOCUMENT_ROOT or the current folder)")
    p.add_argument("--url-prefix", default="", help="URL prefix for --image-ref prefix")
    p.add_argument("--no-cache", action="store_true", help="ignore and do not fill the prediction cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    scaleout.add_predict_options(p)
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace, services: Services) -> int:
    settings = with_profile_options(services.settings, args)
    if args.no_cache:
        settings = replace(settings, preannotate=replace(settings.preannotate, prediction_cache=False))
    services = services.with_settings(settings)
    config = load_config(args.label_config)
    if args.image_ref == "prefix" and not args.url_prefix:
        raise UsageError("--image-ref prefix needs --url-prefix (e.g. https://files.example.com/ocr/)")
    image_ref = ImageRef(args.image_ref, args.root or settings.label_studio.document_root, args.url_prefix)
    if args.ray:
        return scaleout.cmd_predict_ray(args, services, settings, config, image_ref)
    paths = find_images(args.paths)
    if not paths:
        print("svtr-label: error: no image files found in " + " ".join(args.paths), file=sys.stderr)
        return 1
    refs = {str(p): image_ref(p) for p in paths if p.exists()}  # fail before the long part, not after it
    if args.image_ref == "local-files" and any("/" not in r.split("?d=", 1)[1] for r in refs.values()):
        print(
            "svtr-label: warning: some images lie directly in the document root; Label Studio serves local files "
            "only from a storage folder below LOCAL_FILES_DOCUMENT_ROOT: pass --root the parent folder",
            file=sys.stderr,
        )
    engine = services.engine()
    cache = services.prediction_cache()

    tasks, failures, hits, lines = [], [], 0, 0
    bar = progress_bar(args, total=len(paths), unit="img", desc="pre-annotating")
    for outcome in annotate_files(paths, engine, cache, settings.images):
        bar.update(1)
        if outcome.page is None:
            failures.append(outcome.error or outcome.name)
            bar.write(f"skipped: {outcome.error}", file=sys.stderr)
            continue
        hits += outcome.cached
        lines += len(outcome.page.regions)
        tasks.append(make_task(outcome.page, refs[outcome.name], config, args.shape))
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
