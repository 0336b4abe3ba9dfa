"""Scale-out jobs on Ray Data: pre-annotate inputs into an output folder, or a Label Studio project.

The plan of both jobs, after Ray Data's batch-inference guide:

    driver: list inputs, drop those done  ->  read (tasks, num_cpus=0)  ->  [decode (CPU tasks), GPU jobs]
            ->  OCR actors (engine built once per actor)  ->  driver: commit shards / import predictions

Ray Data streams blocks of `block_size` inputs through the stages with backpressure; a block is
the unit of progress and of work redone after a failure. Read tasks ask for no CPU: when the
actors hold every CPU, reads that needed one would never be scheduled (Ray issue 44687).

Exactly once: only the driver writes, every input's row is committed once (a row Ray delivers
again after a retry is dropped by uri), and a rerun leaves out the inputs already committed
(scale.output). For Label Studio, a rerun skips the tasks holding this model_version, as `push` does.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence, cast

from svtr_label.errors import ScaleError
from svtr_label.labelstudio.client import LabelStudio
from svtr_label.labelstudio.format import LabelConfig
from svtr_label.labelstudio.payloads import Prediction, PredictionAnswer, Task
from svtr_label.labelstudio.push import PushReport, has_prediction
from svtr_label.scale import actors
from svtr_label.scale.output import JobOutput, Row
from svtr_label.settings import RaySettings, Settings, quiet_third_parties

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (inputs done this run, inputs to do this run)


@dataclass
class JobReport:
    """What one run of a predict job did."""

    inputs: int = 0  # inputs the sources name
    already: int = 0  # of which a previous run committed (same model_version)
    written: int = 0  # rows this run committed
    errors: int = 0  # of which are failed inputs
    redelivered: int = 0  # rows Ray delivered twice (after a retry), dropped
    nodes: Counter = field(default_factory=Counter)  # rows per Ray node
    shards: list[Path] = field(default_factory=list)
    task_files: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def import_ray() -> Any:
    quiet_third_parties()  # no usage reports from the Ray this process starts
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ScaleError("--ray needs Ray: pip install 'svtr-label[ray]'") from None
    return ray


def connect(ray_settings: RaySettings, address: str) -> Any:
    """Join the cluster at `address` ("auto": the one `ray start` began on this machine; host:port;
    ray://host:port), or start a private one on this machine for "local". Returns the ray module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    try:
        if address == "local":
            # A loopback address: Ray would otherwise listen on the machine's own address.
            ray.init(_node_ip_address=ray_settings.local_node_ip, include_dashboard=False,
                     num_cpus=ray_settings.local_cpus, log_to_driver=True)
        else:
            ray.init(address=address, log_to_driver=True)
    except ConnectionError as exc:
        raise ScaleError(f"no Ray cluster at {address} ({exc}): start one with `ray start --head`, or pass --ray local") from None
    return ray


def plan(ray: Any, ray_settings: RaySettings, todo: int) -> tuple[int, int]:
    """(actors, blocks): as many actors as the cluster's CPUs (or GPUs) hold, never more than the
    blocks to do; blocks of `block_size` inputs."""
    resources = ray.cluster_resources()
    if ray_settings.gpus_per_actor > 0:
        fit = int(resources.get("GPU", 0) // ray_settings.gpus_per_actor)
        if fit == 0:
            raise ScaleError(f"the cluster has no GPU for --gpus-per-actor {ray_settings.gpus_per_actor} (resources: {resources})")
    else:
        fit = int(resources.get("CPU", 0) // ray_settings.cpus_per_actor)
    blocks = max(1, math.ceil(todo / ray_settings.block_size))
    actors_wanted = ray_settings.actors or max(1, fit)
    return max(1, min(actors_wanted, blocks)), blocks


def _pipeline(ray: Any, items: list[dict[str, str]], read: Callable[..., Any], read_kwargs: dict[str, Any],
              predictor: type, predictor_kwargs: dict[str, Any], settings: Settings) -> Any:
    """The Ray Data plan from items to predicted batches (lazy: it runs as the driver iterates)."""
    rs = settings.ray
    n_actors, blocks = plan(ray, rs, len(items))
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = rs.progress_bars
    context.execution_options.preserve_order = False
    # Start work only once every actor has loaded its models: otherwise the first actor up takes
    # every block of a short job while the others are still loading (seen on a loaded machine).
    context.wait_for_min_actors_s = rs.actor_start_timeout
    gpu = rs.gpus_per_actor > 0
    threads = max(1, int(rs.cpus_per_actor) // rs.pipelines_per_actor)
    predictor_kwargs = {"settings": actors.actor_settings(settings, rs.pipelines_per_actor, threads, gpu), **predictor_kwargs}
    log.info("Ray job: %d inputs in %d blocks, %d actor(s) x %d pipeline(s), %s", len(items), blocks, n_actors,
             rs.pipelines_per_actor, f"{rs.gpus_per_actor} GPU each" if gpu else f"{rs.cpus_per_actor} CPU each")
    ds = ray.data.from_items(items, override_num_blocks=blocks)
    # At no CPU cost, every block's read would be in flight at once, each in a Python worker of its
    # own that the actors then queue behind (bench_ray.py: 25 processes, start-up 33 s on 48 pages):
    # two reads per actor keep the actors fed.
    ds = ds.map_batches(read, fn_kwargs=read_kwargs, batch_size=rs.block_size, batch_format="pyarrow", num_cpus=0,
                        compute=ray.data.TaskPoolStrategy(size=2 * n_actors))
    if gpu:
        ds = ds.map_batches(actors.decode_batch, fn_kwargs={"limits": settings.images}, batch_size=rs.block_size,
                            batch_format="pyarrow", num_cpus=1)
    return ds.map_batches(
        predictor, fn_constructor_kwargs=predictor_kwargs, batch_size=rs.block_size, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=n_actors),  # every actor from the start: a pool that may grow stays at one on small jobs
        num_cpus=0 if gpu else rs.cpus_per_actor, num_gpus=rs.gpus_per_actor or None,
    )


# --- predict: inputs -> output folder ---------------------------------------------------------------


def predict_job(
    uris: Sequence[str], output: JobOutput, settings: Settings, address: str, model_version: str,
    to_task: Callable[[Row], Task | None], on_progress: Progress | None = None,
) -> JobReport:
    """Pre-annotate every input not yet committed in `output` for `model_version`."""
    started = time.monotonic()
    done = output.done(model_version)
    todo = [u for u in uris if u not in done]
    report = JobReport(inputs=len(uris), already=len(uris) - len(todo))
    if todo:
        ray = connect(settings.ray, address)
        ds = _pipeline(ray, [{"uri": u} for u in todo], actors.read_batch,
                       {"max_bytes": settings.images.max_bytes, "fetch": settings.fetch}, actors.PagePredictor, {}, settings)
        _commit_stream(ds, output, settings, done, report, len(todo), on_progress)
    report.task_files = output.write_task_files(to_task)
    report.seconds = time.monotonic() - started
    return report


def _commit_stream(ds: Any, output: JobOutput, settings: Settings, done: set[str], report: JobReport, todo: int,
                   on_progress: Progress | None) -> None:
    seen = set(done)
    pending: list[Row] = []
    last_commit = time.monotonic()

    def commit() -> None:
        nonlocal pending, last_commit
        if pending:
            report.shards.append(output.commit(pending))
            report.written += len(pending)
            report.errors += sum(r.error is not None for r in pending)
            log.info("committed %s: %d of %d inputs done, %d failed", report.shards[-1].name, report.written, todo, report.errors)
            if on_progress is not None:
                on_progress(report.written, todo)
        pending, last_commit = [], time.monotonic()

    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in actors.columns_to_rows(batch):
            if row.uri in seen:
                report.redelivered += 1
                continue
            seen.add(row.uri)
            pending.append(row)
            report.nodes[row.node or "?"] += 1
        if len(pending) >= settings.ray.commit_every or time.monotonic() - last_commit >= settings.ray.commit_seconds:
            commit()
    commit()


# --- push: a Label Studio project --------------------------------------------------------------------


def push_job(ls: LabelStudio, project: int, settings: Settings, address: str, model_version: str, *,
             view: int | None = None, ids: Sequence[int] | None = None, chunk: int = 50,
             on_progress: Progress | None = None) -> PushReport:
    """`svtr-label push` on a cluster: actors read and predict, the driver alone lists the tasks and
    imports the predictions, a chunk at a time (an interrupted run loses at most one chunk)."""
    config_xml = ls.project(project)["label_config"]
    LabelConfig.parse(config_xml)  # a config without image + text area fails here, before the cluster starts
    tasks = list(ls.tasks(project, view=view, ids=ids))
    todo = [t for t in tasks if not has_prediction(t, model_version)]
    report = PushReport(tasks=len(tasks), already=len(tasks) - len(todo))
    if not todo:
        return report
    ray = connect(settings.ray, address)
    items = [{"task": json.dumps({"id": t["id"], "data": t.get("data")}, ensure_ascii=False)} for t in todo]
    ds = _pipeline(ray, items, actors.read_task_batch, {"config_xml": config_xml, "fetch": settings.fetch},
                   actors.TaskPredictor, {"config_xml": config_xml}, settings)
    ready: list[Prediction] = []
    seen: set[int] = set()
    handled = 0

    def flush() -> None:
        nonlocal ready
        report.created += ls.import_predictions(project, ready)
        ready = []

    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for task_id, answer, error in zip(*(actors.column(batch, k) for k in ("task_id", "answer", "error"))):
            if task_id in seen:
                continue
            seen.add(task_id)
            handled += 1
            if answer is None:
                report.failed.append(f"task {task_id}: {error}")
            else:
                ready.append(cast(Prediction, {"task": int(task_id), **cast(PredictionAnswer, json.loads(answer))}))
            if len(ready) >= chunk:
                flush()
        if on_progress is not None:
            on_progress(handled, len(todo))
    flush()
    return report


def with_ray_options(settings: Settings, **changes: Any) -> Settings:
    """The settings with command-line Ray options (None: not given) applied."""
    given = {k: v for k, v in changes.items() if v is not None}
    return replace(settings, ray=replace(settings.ray, **given))
