"""`svtr-label push`: pre-annotate a whole Label Studio project through its API, outside Label
Studio's request timeouts; `svtr-label pull`: bring a project's annotations into a store.

push predicts in chunks and imports each chunk's predictions as soon as it is done, so an
interrupted run loses at most one chunk, and a rerun skips every task that already holds a
prediction of the same model_version (what Label Studio's own "retrieve predictions" does).
A task whose image fails gets no prediction: the next run retries it.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from dataclasses import replace
from typing import Any, Callable, Iterable, Sequence

from .lsclient import LabelStudio, LabelStudioError


def _ids(text: str) -> list[int]:
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--tasks wants comma-separated task ids, got {text!r}") from None


def _add_connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL"), help="Label Studio URL (env LABEL_STUDIO_URL)")
    p.add_argument("--api-key", default=os.environ.get("LABEL_STUDIO_API_KEY"), help="personal access token or legacy token (env LABEL_STUDIO_API_KEY)")
    p.add_argument("--project", type=int, required=True, help="project id")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--view", type=int, help="only the tasks of this Data Manager view (tab) id")
    which.add_argument("--tasks", type=_ids, help="only these task ids, e.g. 1,2,3")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parser(sub: Any) -> None:
    from .options import add_profile_options

    p = sub.add_parser("push", help="pre-annotate a Label Studio project through its API, in chunks (resumable)")
    _add_connection(p)
    add_profile_options(p)
    p.add_argument("--chunk", type=int, default=50, help="tasks per prediction import (default 50)")
    p.add_argument("--batch-size", type=int, default=4, help="images per inference batch (default 4)")
    p.set_defaults(func=cmd_push)

    q = sub.add_parser("pull", help="import a Label Studio project's annotations into a corrections store")
    _add_connection(q)
    q.add_argument("--store", required=True, help="store file to create or update")
    q.set_defaults(func=cmd_pull)


def _client(args: argparse.Namespace) -> LabelStudio:
    if not args.url or not args.api_key:
        raise ValueError("give --url and --api-key (or set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)")
    return LabelStudio(args.url, args.api_key)


def has_prediction(task: dict[str, Any], model_version: str) -> bool:
    versions = list(task.get("predictions_model_versions") or [])
    versions += [p.get("model_version") for p in task.get("predictions") or [] if isinstance(p, dict)]
    return model_version in versions


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]


def _reports_api_errors(cmd: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Label Studio's refusals (bad key, unknown project) as one clear line, not a traceback."""

    @functools.wraps(cmd)
    def run(args: argparse.Namespace) -> int:
        try:
            return cmd(args)
        except LabelStudioError as exc:
            print(f"svtr-label {args.command}: error: {exc}", file=sys.stderr)
            return 2

    return run


@_reports_api_errors
def cmd_push(args: argparse.Namespace) -> int:
    from .annotate import predict_tasks
    from .cache import PredictionCache
    from .fetch import FetchSettings, ImageFetcher
    from .labelstudio import LabelConfig
    from .options import engine_from_args, progress_bar

    ls = _client(args)
    config = LabelConfig.parse(ls.project(args.project)["label_config"])
    engine = engine_from_args(args)
    version = engine.model_version
    tasks = list(ls.tasks(args.project, view=args.view, ids=args.tasks))
    todo = [t for t in tasks if not has_prediction(t, version)]
    fetch = ImageFetcher(replace(FetchSettings.from_env(), ls_url=ls.url, api_key=args.api_key))
    cache = PredictionCache.default()

    created, failed = 0, []
    bar = progress_bar(args, total=len(todo), unit="task", desc="pushing predictions")
    for chunk in chunks(todo, args.chunk):
        answers = predict_tasks(list(chunk), config, engine, fetch, cache, batch_size=args.batch_size)
        ready = [{"task": t["id"], **a} for t, a in zip(chunk, answers) if "error" not in a]
        failed += [f"task {t['id']}: {a['error']}" for t, a in zip(chunk, answers) if "error" in a]
        created += ls.import_predictions(args.project, ready)
        bar.update(len(chunk))
    bar.close()
    for line in failed:
        print(f"skipped {line}", file=sys.stderr)
    print(
        f"project {args.project}: {len(tasks)} tasks, {len(tasks) - len(todo)} already had {version}, "
        f"{created} predictions imported, {len(failed)} failed (rerun to retry them)"
    )
    return 1 if failed else 0


@_reports_api_errors
def cmd_pull(args: argparse.Namespace) -> int:
    from .store import Store

    ls = _client(args)
    tasks = [t for t in ls.tasks(args.project, view=args.view, ids=args.tasks) if t.get("annotations")]
    with Store(args.store) as store:
        images = store.import_label_studio_tasks(tasks)
    print(f"project {args.project}: {len(tasks)} annotated tasks imported into {args.store} ({len(set(images))} images)")
    return 0

