"""`--ray`: the options and the driver side of `svtr-label predict --ray` and `svtr-label push --ray`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from svtr_label.cli.options import progress_bar
from svtr_label.errors import UsageError
from svtr_label.labelstudio.format import LabelConfig, make_task
from svtr_label.labelstudio.payloads import Task
from svtr_label.labelstudio.refs import ImageRef
from svtr_label.scale.inputs import is_remote, list_inputs
from svtr_label.scale.job import JobReport, predict_job, with_ray_options
from svtr_label.scale.output import FORMATS, JobOutput, Row
from svtr_label.services import Services
from svtr_label.settings import Settings


def add_ray_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scale-out on Ray (pip install 'svtr-label[ray]')")
    g.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run on Ray: 'local' (a private cluster on this machine; the default when no address is given), "
                        "'auto' (the cluster `ray start` joined this machine to), or host:port / ray://host:port")
    g.add_argument("--actors", type=int, help="OCR actors (env SVTR_RAY_ACTORS; default: as many as the cluster's CPUs or GPUs hold)")
    g.add_argument("--cpus-per-actor", type=float, help="CPUs per actor, its inference threads (env SVTR_RAY_CPUS_PER_ACTOR; default 1)")
    g.add_argument("--gpus-per-actor", type=float, help="GPUs per actor, fractions share one (env SVTR_RAY_GPUS_PER_ACTOR; default 0: CPU actors)")
    g.add_argument("--pipelines-per-actor", type=int, help="pipelines per actor (env SVTR_RAY_PIPELINES_PER_ACTOR; default 1)")
    g.add_argument("--block-size", type=int, help="inputs per block, the step of progress and of redone work (env SVTR_RAY_BLOCK_SIZE; default 16)")


def with_ray_args(settings: Settings, args: argparse.Namespace) -> Settings:
    settings = with_ray_options(settings, actors=args.actors, cpus_per_actor=args.cpus_per_actor, gpus_per_actor=args.gpus_per_actor,
                                pipelines_per_actor=args.pipelines_per_actor, block_size=args.block_size,
                                progress_bars=False if args.no_progress else None)
    return settings


def check_gpu_engine(services: Services) -> None:
    """GPU actors run the Paddle engine; a profile on ONNX Runtime (bundled) would run on their CPU."""
    if services.settings.ray.gpus_per_actor > 0 and services.profile().engine == "onnxruntime":
        raise UsageError(f"--gpus-per-actor runs the Paddle engine on the GPU; profile {services.profile().name!r} runs on "
                         "ONNX Runtime: choose svtrv2 or custom Paddle model folders (--engine paddle)")


def bar_progress(args: argparse.Namespace, desc: str, unit: str) -> tuple[Any, Callable[[int, int], None]]:
    bar = progress_bar(args, unit=unit, desc=desc)

    def advance(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return bar, advance


# --- predict --ray --------------------------------------------------------------------------------


def add_predict_options(p: argparse.ArgumentParser) -> None:
    add_ray_options(p)
    p.add_argument("--format", choices=FORMATS, default="parquet", help="row shards with --ray (default parquet)")


def task_writer(config: LabelConfig, shape: str, image_ref: ImageRef, local: list[str]) -> Callable[[Row], Task | None]:
    """Row -> Label Studio task: local files get the refs `predict` writes, URIs stay as they are.
    Every local ref is made before the job starts: a file outside the document root fails now."""
    refs = {uri: image_ref(Path(uri)) for uri in local}

    def to_task(row: Row) -> Task | None:
        if row.page is None:
            return None
        return make_task(row.page, refs.get(row.uri, row.uri), config, shape)

    return to_task


@dataclass(frozen=True)
class RenderedDocuments:
    """Documents rendered on the driver before a Ray job (local ones, and PDFs downloaded from their
    URIs): their page images replace them."""

    pages: dict[str, list[str]] = field(default_factory=dict)  # document path or URI -> its page image paths
    sources: set[str] = field(default_factory=set)  # every document found, rendered or not
    failures: list[str] = field(default_factory=list)  # documents that could not be read, with why
    pages_dir: Path | None = None

    def replace_in(self, uris: list[str]) -> list[str]:
        """The job's inputs: images as listed, each document's pages in its place (documents found in
        folders, which the image listing skips, at the end)."""
        out: list[str] = []
        for uri in uris:
            out.extend(self.pages.get(uri, []) if uri in self.sources else [uri])
        listed = set(uris)
        for doc, pages in self.pages.items():
            if doc not in listed:
                out.extend(pages)
        return list(dict.fromkeys(out))


def cmd_predict_ray(args: argparse.Namespace, services: Services, settings: Settings, config: LabelConfig, image_ref: ImageRef,
                    render_documents: Callable[[list[str]], RenderedDocuments] | None = None) -> int:
    """`render_documents`: the job's listed inputs -> its documents rendered into page images (cli/predict.py)."""
    if args.output == "tasks.json":
        raise UsageError("with --ray, -o/--output names a folder (it holds rows/ and tasks/; a rerun resumes it)")
    settings = with_ray_args(settings, args)
    services = services.with_settings(settings)
    check_gpu_engine(services)
    listed = list_inputs(args.paths)
    documents = render_documents(listed) if render_documents else RenderedDocuments()
    uris = documents.replace_in(listed)
    if not uris:
        if documents.failures:
            raise UsageError(f"none of the {len(documents.sources)} documents could be read")
        raise UsageError("no images found in " + " ".join(args.paths))
    local = [u for u in uris if not is_remote(u)]
    to_task = task_writer(config, args.shape, image_ref, local)
    output = JobOutput(Path(args.output), args.format)
    model_version = services.engine().model_version
    bar, advance = bar_progress(args, "pre-annotating on Ray", "img")
    try:
        report = predict_job(uris, output, settings, args.ray, model_version, to_task, on_progress=advance)
    finally:
        bar.close()
    print_report(report, output, model_version)
    if documents.pages:
        print(f"{len(documents.pages)} documents rendered on this machine into {sum(map(len, documents.pages.values()))} "
              f"page images, a task each: {documents.pages_dir}")
    if documents.failures:
        print(f"{len(documents.failures)} documents skipped (see above)", file=sys.stderr)
    return 0 if report.written + report.already else 1


def print_report(report: JobReport, output: JobOutput, model_version: str) -> None:
    nodes = ", ".join(f"{node}: {n}" for node, n in sorted(report.nodes.items()))
    print(f"{report.inputs} inputs: {report.already} already done for {model_version}, {report.written} written "
          f"({report.errors} failed) in {report.seconds:.1f} s" + (f"; by node: {nodes}" if nodes else ""))
    if report.redelivered:
        print(f"{report.redelivered} rows delivered twice by Ray after a retry were dropped", file=sys.stderr)
    print(f"rows: {output.rows_dir.resolve()}")
    if report.task_files:
        print("Label Studio tasks: " + ", ".join(str(p.resolve()) for p in report.task_files))
