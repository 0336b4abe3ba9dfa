"""`svtr-label push` (pre-annotate a Label Studio project through its API, resumable) and
`svtr-label pull` (bring a project's annotations into a corrections store)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from svtr_label.cli import scaleout
from svtr_label.cli.options import (
    add_label_studio_options,
    add_profile_options,
    with_label_studio_options,
    with_profile_options,
)
from svtr_label.errors import UsageError
from svtr_label.labelstudio.client import LabelStudio
from svtr_label.labelstudio.push import push_predictions
from svtr_label.scale.job import push_job
from svtr_label.services import Services
from svtr_label.settings import Settings
from svtr_label.store import Store


def _ids(text: str) -> list[int]:
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tasks wants comma-separated task ids, got {text!r}") from None


def _add_connection(p: argparse.ArgumentParser) -> None:
    add_label_studio_options(p)
    p.add_argument("--project", type=int, required=True, help="project id")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--view", type=int, help="only the tasks of this Data Manager view (tab) id")
    which.add_argument("--tasks", type=_ids, help="only these task ids, e.g. 1,2,3")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("push", help="pre-annotate a Label Studio project through its API, in chunks (resumable)")
    _add_connection(p)
    add_profile_options(p)
    p.add_argument("--chunk", type=int, default=50, help="tasks per prediction import (default 50)")
    scaleout.add_ray_options(p)
    p.set_defaults(func=cmd_push)

    q = sub.add_parser("pull", help="import a Label Studio project's annotations into a corrections store")
    _add_connection(q)
    q.add_argument("--store", type=Path, required=True, help="store file to create or update")
    q.set_defaults(func=cmd_pull)


def _client(settings: Settings) -> LabelStudio:
    ls = settings.label_studio
    if not ls.url or not ls.api_key:
        raise UsageError("give --url and --api-key (or set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)")
    return LabelStudio(ls.url, ls.api_key)


def cmd_push(args: argparse.Namespace, services: Services) -> int:
    settings = with_label_studio_options(with_profile_options(services.settings, args), args)
    if args.ray:
        settings = scaleout.with_ray_args(settings, args)
    services = services.with_settings(settings)
    if args.ray:
        scaleout.check_gpu_engine(services)
    ls = _client(settings)
    engine = services.engine()
    bar, advance = scaleout.bar_progress(args, "pushing predictions", "task")
    try:
        if args.ray:
            report = push_job(ls, args.project, settings, args.ray, engine.model_version, view=args.view, ids=args.tasks,
                              chunk=args.chunk, on_progress=advance)
        else:
            report = push_predictions(
                ls, args.project, engine, services.fetcher(), services.prediction_cache(), view=args.view, ids=args.tasks,
                chunk=args.chunk, settings=settings.preannotate, limits=settings.images, budget=services.pixel_budget(),
                on_chunk=advance,
            )
    finally:
        bar.close()
    for line in report.failed:
        print(f"skipped {line}", file=sys.stderr)
    print(
        f"project {args.project}: {report.tasks} tasks, {report.already} already had {engine.model_version}, "
        f"{report.created} predictions imported, {len(report.failed)} failed (rerun to retry them)"
    )
    return 1 if report.failed else 0


def cmd_pull(args: argparse.Namespace, services: Services) -> int:
    settings = with_label_studio_options(services.settings, args)
    ls = _client(settings)
    listed = list(ls.tasks(args.project, view=args.view, ids=args.tasks))
    annotated = [t for t in listed if t.get("annotations")]
    with Store(args.store, root=settings.label_studio.document_root, limits=settings.images) as store:
        images = store.import_label_studio_tasks(annotated)
        # Tasks the store knows whose annotations were all deleted in Label Studio since the last pull.
        known = store.task_ids()
        deleted = store.forget_deleted_annotations([t for t in listed if not t.get("annotations") and t.get("id") in known])
    print(f"project {args.project}: {len(annotated)} annotated tasks imported into {args.store} ({len(set(images))} images)"
          + (f", {deleted} annotations deleted in Label Studio forgotten" if deleted else ""))
    return 0
