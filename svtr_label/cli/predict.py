"""`svtr-label predict`: pre-annotate image files and documents into a Label Studio tasks file.

Documents (PDFs, multi-page TIFFs) are rendered into page images beside the output
(`<output folder>/pages/`) first; then every page is predicted like an image. `--document-tasks`
says what a document becomes: one task per page, or one multi-page task (its pages listed in
`data.pages`, every result carrying its page's `item_index`) for a labeling config whose Image
reads a list (`svtr-label config --multipage`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

from svtr_label.cli import scaleout
from svtr_label.cli.options import (
    add_profile_options,
    progress_bar,
    with_profile_options,
    write_json_atomic,
)
from svtr_label.core.documents import find_inputs, is_document, render_document
from svtr_label.core.page import Page
from svtr_label.errors import ImageError, RefError, SvtrLabelError, UsageError
from svtr_label.labelstudio.format import LabelConfig, load_config, make_document_task, make_task
from svtr_label.labelstudio.payloads import Task
from svtr_label.labelstudio.refs import ImageRef
from svtr_label.ocr.annotate import Outcome, annotate_files
from svtr_label.ocr.engine import resolve_engine_settings
from svtr_label.ocr.rectify import Rectifier, load_unwarper
from svtr_label.scale.inputs import MANIFEST_SUFFIXES, WEB_SCHEMES, download, is_remote, is_remote_pdf
from svtr_label.services import Services
from svtr_label.settings import EngineSettings, Settings

PER_PAGE, PER_DOCUMENT = "per-page", "per-document"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("predict", help="pre-annotate images and documents (PDF, multi-page TIFF) into a Label Studio tasks file")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image files, PDFs, multi-page TIFFs or folders; with --ray also s3:// and gs:// prefixes and manifests (.txt, .jsonl, .parquet)")
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
    p.add_argument(
        "--document-tasks",
        choices=[PER_PAGE, PER_DOCUMENT],
        help="what a PDF or multi-page TIFF becomes: one task per page, or one multi-page task (data.pages, results with "
             "item_index; the multi-page labeling config of `svtr-label config --multipage`). Default: per-document when "
             "--label-config reads a list of pages (Image valueList), else per-page",
    )
    p.add_argument("--dpi", type=int, help="resolution PDF pages are rendered at (default SVTR_PDF_DPI, 200)")
    p.add_argument("--no-cache", action="store_true", help="ignore and do not fill the prediction cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    scaleout.add_predict_options(p)
    p.set_defaults(func=cmd_predict)


@dataclass(frozen=True)
class _Input:
    """One input as the user named it, and its page image files (one for an image)."""

    name: str
    pages: tuple[Path, ...]
    document: bool


def cmd_predict(args: argparse.Namespace, services: Services) -> int:
    settings = with_profile_options(services.settings, args)
    if args.no_cache:
        settings = replace(settings, preannotate=replace(settings.preannotate, prediction_cache=False))
    if args.dpi is not None:
        if not 1 <= args.dpi <= 1200:
            raise UsageError(f"--dpi {args.dpi}: expected a resolution from 1 to 1200 (dots per inch)")
        settings = replace(settings, documents=replace(settings.documents, dpi=args.dpi))
    services = services.with_settings(settings)
    mode, config = _mode_and_config(args)
    if args.image_ref == "prefix" and not args.url_prefix:
        raise UsageError("--image-ref prefix needs --url-prefix (e.g. https://files.example.com/ocr/)")
    image_ref = ImageRef(args.image_ref, args.root or settings.label_studio.document_root, args.url_prefix)
    if args.ray:
        return scaleout.cmd_predict_ray(args, services, settings, config, image_ref,
                                        lambda uris: _documents_for_ray(args, mode, services, image_ref, uris))
    paths = find_inputs(args.paths)
    if not paths:
        print("svtr-label: error: no image files or documents found in " + " ".join(args.paths), file=sys.stderr)
        return 1
    pages_dir = Path(args.output).resolve().parent / "pages"
    _check_pages_dir(paths, pages_dir, image_ref)
    inputs, failures = _expand(paths, pages_dir, settings, args)
    models, originals = settings.models, {}
    if models.use_doc_unwarping:
        inputs, originals = _unwarped(inputs, pages_dir / "rectified", services, args, failures)
        # The pages are flat and upright now: the OCR engine runs without the document stages.
        models = replace(models, use_doc_unwarping=False, use_doc_orientation=False)
    refs = {str(p): image_ref(p) for i in inputs for p in i.pages if p.exists()}  # fail before the long part, not after it
    if args.image_ref == "local-files" and any("/" not in r.split("?d=", 1)[1] for r in refs.values()):
        print(
            "svtr-label: warning: some images lie directly in the document root; Label Studio serves local files "
            "only from a storage folder below LOCAL_FILES_DOCUMENT_ROOT: pass --root the parent folder",
            file=sys.stderr,
        )
    all_pages = [p for i in inputs for p in i.pages]
    engine = services.engine(models, engine_for_pages(len(all_pages), settings.engine, services.profile(models).engine))
    cache = services.prediction_cache()

    tasks: list[Task] = []
    hits = lines = n_pages = 0
    bar = progress_bar(args, total=len(all_pages), unit="img", desc="pre-annotating")
    outcomes = _grouped(inputs, annotate_files(all_pages, engine, cache, settings.images), bar)
    for item, done in outcomes:
        broken = [o for o in done if o.page is None]
        if broken:
            failures.append(_failure(item, done, broken))
            bar.write(f"skipped: {failures[-1]}", file=sys.stderr)
            if item.document and mode == PER_DOCUMENT:
                continue  # a multi-page task needs every page
        ok = [o for o in done if o.page is not None]
        hits += sum(o.cached for o in ok)
        lines += sum(len(o.page.regions) for o in ok if o.page is not None)
        n_pages += len(ok)
        tasks.extend(_with_originals(_tasks(item, ok, refs, config, mode, args.shape), ok, originals, image_ref))
    bar.close()
    if not tasks:
        print(f"svtr-label: error: none of the {len(paths)} inputs could be processed", file=sys.stderr)
        return 1
    out = Path(args.output)
    write_json_atomic(out, tasks)
    documents = sum(i.document for i in inputs)
    print(
        (f"{len(tasks)} tasks ({n_pages} pages, {documents} documents)" if documents else f"{len(tasks)} images") + f", {lines} text lines "
        f"({hits} from cache), {len(failures)} skipped; model {engine.model_version}\nLabel Studio tasks: {out.resolve()}"
        + (f"\npage images: {pages_dir}" if documents else "")
        + ("\nlabeling config: svtr-label config --multipage" if config.multipage and not args.label_config else "")
    )
    return 0


def engine_for_pages(n_pages: int, engine: EngineSettings, inference_engine: str | None) -> EngineSettings:
    """With fewer pages than the machine's default pipelines, one pipeline per page, each on its
    share of the cores: a single page then runs on every core instead of on one (1 page as a whole
    process on 2 cores: median 3.75 s, against 4.3 s before). Worker or thread counts set by the user are kept."""
    if engine.workers is not None or engine.cpu_threads is not None or n_pages < 1:
        return engine
    default = resolve_engine_settings(engine, inference_engine)
    if n_pages >= (default.workers or 1):
        return engine
    return replace(engine, workers=n_pages)


def _mode_and_config(args: argparse.Namespace) -> tuple[str, LabelConfig]:
    """The task shape asked for and the labeling config it is written for: per-document tasks
    need a config whose Image reads a list; without --label-config they get the shipped one."""
    mode = args.document_tasks
    if mode == PER_DOCUMENT and not args.label_config:
        return mode, load_config(None, multipage=True)
    config = load_config(args.label_config)
    if mode is None:
        mode = PER_DOCUMENT if config.multipage else PER_PAGE
    if mode == PER_DOCUMENT and not config.multipage:
        raise UsageError(
            f"--document-tasks per-document needs a labeling config whose <Image> reads a list of pages "
            f'(valueList="$pages"); {args.label_config} reads one image (value="${config.data_key}"): leave out '
            "--label-config for the shipped multi-page config (`svtr-label config --multipage`)"
        )
    return mode, config


def _documents_for_ray(args: argparse.Namespace, mode: str, services: Services, image_ref: ImageRef,
                       uris: list[str]) -> scaleout.RenderedDocuments:
    """The documents of a Ray job rendered here, on the driver, into page images under the output
    folder; Ray's actors then read their pages like any image, a task each. Local documents are
    those named or in the folders given; PDFs among the listed `uris` (under s3:// or gs:// prefixes,
    in manifests, http(s) URLs) are downloaded first, within SVTR_MAX_IMAGE_BYTES."""
    settings = services.settings
    local = [a for a in args.paths if not is_remote(a) and Path(a).suffix.lower() not in MANIFEST_SUFFIXES]
    documents = [p for p in find_inputs(local) if p.is_file() and is_document(p)]
    remote = [u for u in uris if is_remote_pdf(u)]
    if not documents and not remote:
        return scaleout.RenderedDocuments()
    if mode == PER_DOCUMENT:
        raise UsageError(
            "--ray writes one task per page: documents cannot become multi-page tasks there. Pass --document-tasks "
            "per-page (and a one-image labeling config), or run without --ray for multi-page tasks"
        )
    pages_dir = Path(args.output).resolve() / "pages"
    _check_pages_ref(pages_dir, image_ref)
    inputs, failures = _expand(documents, pages_dir, settings, args)
    pages = {str(Path(i.name).resolve()): [str(p.resolve()) for p in i.pages] for i in inputs}
    pages.update(_render_remote(remote, pages_dir, services, args, failures))
    return scaleout.RenderedDocuments(
        pages=pages,
        sources={str(p.resolve()) for p in documents} | set(remote),
        failures=failures,
        pages_dir=pages_dir,
    )


def _render_remote(uris: list[str], pages_dir: Path, services: Services, args: argparse.Namespace,
                   failures: list[str]) -> dict[str, list[str]]:
    """Remote PDFs' page images (URI -> pages), each downloaded into a temporary file, rendered, and
    the file removed; one that cannot be had or read is reported by its URI and left out."""
    if not uris:
        return {}
    settings = services.settings
    fetcher = services.fetcher() if any(u.startswith(WEB_SCHEMES) for u in uris) else None
    bar = progress_bar(args, total=len(uris), unit="doc", desc="downloading and rendering documents")

    def one(uri: str, folder: Path) -> list[str] | str:
        path = None
        try:
            path = download(uri, folder, settings.images.max_bytes, fetcher)
            doc = render_document(path, pages_dir, settings.documents.dpi, settings.images)
            return [str(p.resolve()) for p in doc.pages]
        except (OSError, SvtrLabelError) as exc:
            message = str(exc).replace(str(path), uri) if path else str(exc)
            return message if uri in message else f"{uri}: cannot download ({message})"
        finally:
            if path is not None:
                path.unlink(missing_ok=True)
            bar.update(1)

    rendered = {}
    with tempfile.TemporaryDirectory(prefix="svtr-documents-") as tmp, \
            ThreadPoolExecutor(max_workers=settings.preannotate.fetch_threads) as pool:
        for uri, outcome in zip(uris, pool.map(lambda u: one(u, Path(tmp)), uris)):
            if isinstance(outcome, str):
                failures.append(outcome)
                bar.write(f"skipped: {outcome}", file=sys.stderr)
            else:
                rendered[uri] = outcome
    bar.close()
    return rendered


def _check_pages_dir(paths: list[Path], pages_dir: Path, image_ref: ImageRef) -> None:
    """When `paths` hold documents, their pages' refs must be writable before any page is rendered."""
    if any(is_document(p) for p in paths):
        _check_pages_ref(pages_dir, image_ref)


def _check_pages_ref(pages_dir: Path, image_ref: ImageRef) -> None:
    """Page images are written under the output's folder: their refs must be writable (local files:
    under the document root)."""
    try:
        image_ref(pages_dir / "page.png")
    except RefError:
        raise UsageError(
            f"page images of documents are written to {pages_dir}, which is not under the document root "
            f"{(image_ref.root or Path.cwd()).resolve()}: write the output (-o) under --root, or pass --root a folder holding both"
        ) from None


def _expand(paths: list[Path], pages_dir: Path, settings: Settings, args: argparse.Namespace) -> tuple[list[_Input], list[str]]:
    """Every input with its page files: documents rendered (or their pages from an earlier run
    reused); a document that cannot be read is reported and left out, the others go on."""
    inputs, failures = [], []
    documents = [p for p in paths if is_document(p)]
    bar = progress_bar(args, total=len(documents), unit="doc", desc="rendering pages") if documents else None
    for path in paths:
        if path not in documents:
            inputs.append(_Input(str(path), (path,), False))
            continue
        try:
            doc = render_document(path, pages_dir, settings.documents.dpi, settings.images)
            inputs.append(_Input(str(path), doc.pages, True))
        except ImageError as exc:
            failures.append(str(exc))
            print(f"skipped: {exc}", file=sys.stderr)
        finally:
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return inputs, failures


def _unwarped(inputs: list[_Input], folder: Path, services: Services, args: argparse.Namespace,
              failures: list[str]) -> tuple[list[_Input], dict[str, Path]]:
    """Every page replaced by its unwarped copy (ocr/rectify.py); {copy: original}. A page that
    cannot be read is reported and its input left out; a model that cannot load stops the run."""
    profile, settings = services.profile(), services.settings
    rectifier = Rectifier(folder, lambda: load_unwarper(profile, settings.engine, settings.models.unwarping_model_dir))
    out, originals = [], {}
    bar = progress_bar(args, total=sum(len(i.pages) for i in inputs), unit="img", desc="unwarping")
    for item in inputs:
        try:
            pages = tuple(rectifier.rectify(p).path for p in item.pages)
        except ImageError as exc:
            failures.append(str(exc))
            bar.write(f"skipped: {exc}", file=sys.stderr)
            continue
        finally:
            bar.update(len(item.pages))
        originals.update({str(flat): source for flat, source in zip(pages, item.pages)})
        out.append(_Input(item.name, pages, item.document))
    bar.close()
    return out, originals


def _with_originals(tasks: list[Task], ok: list[Outcome], originals: dict[str, Path], image_ref: ImageRef) -> list[Task]:
    """Tasks of unwarped pages keep their original image's reference in data.original_image (a
    list, page by page, in a multi-page task)."""
    if not originals:
        return tasks
    refs = [image_ref(originals[o.name]) for o in ok]
    if len(tasks) == len(refs):
        for task, ref in zip(tasks, refs):
            task["data"]["original_image"] = ref
    else:
        for task in tasks:
            task["data"]["original_image"] = refs
    return tasks


def _grouped(inputs: list[_Input], outcomes: Iterator[Outcome], bar: Any) -> Iterator[tuple[_Input, list[Outcome]]]:
    """The outcomes of annotate_files (one per page, in order) handed back input by input."""
    for item in inputs:
        done = []
        for _ in item.pages:
            done.append(next(outcomes))
            bar.update(1)
        yield item, done


def _failure(item: _Input, done: list[Outcome], broken: list[Outcome]) -> str:
    if not item.document:
        return broken[0].error or item.name
    first = broken[0]
    return f"{item.name}: page {done.index(first) + 1} of {len(done)}: {first.error}"


def _tasks(item: _Input, ok: list[Outcome], refs: dict[str, str], config: LabelConfig, mode: str, shape: str) -> list[Task]:
    pages: list[Page] = [o.page for o in ok if o.page is not None]
    page_refs = [refs[o.name] for o in ok]
    if item.document and mode == PER_DOCUMENT:
        return [make_document_task(pages, page_refs, config, shape)]  # type: ignore[arg-type]
    return [make_task(page, ref, config, shape) for page, ref in zip(pages, page_refs)]  # type: ignore[arg-type]
