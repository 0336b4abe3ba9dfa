"""Several models side by side on one corrected truth (`svtr-label eval` with several sets).

A prediction set is a store file, a Label Studio export or a `svtr-label predict` tasks file (each
of its model_versions becomes one compared model), or a profile run now on the truth's own images
(`run_profile`): files carry no timing, so a profile run is the one way to get seconds per page,
measured on the very pages the accuracy comes from.

Timing of a profile run: model loading, then one untimed warm-up page per pipeline (first calls
build kernels and buffers: seconds on Paddle), then the wall time of the engine on the decoded
pages, in chunks that keep every pipeline busy. Reading and decoding the files is left out: it is
the same for every model.

A set that cannot be used (missing file, no image in common with the truth, no readable image)
fails alone: it is listed with its error, the others are still compared.

    sets = [open_prediction_set("tasks.json"), run_profile(truth, services.engine("bundled"))]
    result = compare_models(truth, sets)
    print(format_comparison(result))
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from svtr_label.core.geometry import as_points
from svtr_label.core.images import DecodedImage, decode_image, read_image
from svtr_label.core.page import Page, Region
from svtr_label.errors import DatasetError, SvtrLabelError
from svtr_label.dataset.evaluate import THRESHOLDS, ConfidenceRow, Evaluation, VersionEvaluation, evaluate, plot_confidence
from svtr_label.labelstudio.sources import ImageSource
from svtr_label.ocr.engine import OcrEngine
from svtr_label.store import ReviewState, Store, open_input

KNOWN_TRUTH_VERSION = "known-truth"


# --- what is compared ------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """How long a profile took on the truth's pages."""

    profile: str
    model_load_seconds: float  # loading the models (0 when the process had them loaded already)
    warmup_seconds: float  # one untimed page per pipeline: first calls are slow
    pages: int
    predict_seconds: float  # the engine on the decoded pages, wall time
    workers: int  # pipelines run at once (SVTR_WORKERS)

    @property
    def seconds_per_page(self) -> float:
        return self.predict_seconds / self.pages if self.pages else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "model_load_seconds": self.model_load_seconds, "warmup_seconds": self.warmup_seconds,
                "pages": self.pages, "predict_seconds": self.predict_seconds, "workers": self.workers,
                "seconds_per_page": self.seconds_per_page}


@dataclass(frozen=True)
class PredictionSet:
    """Predictions to compare, by name: a file (no timing) or a profile run (timed); or why it failed."""

    name: str
    store: Store | None
    timing: Timing | None = None
    unreadable: tuple[str, ...] = ()  # truth images a profile run could not read: one error each
    error: str | None = None

    @classmethod
    def failed(cls, name: str, error: str) -> "PredictionSet":
        return cls(name, None, error=error)


def open_prediction_set(path: str | Path, root: Path | None = None, name: str | None = None) -> PredictionSet:
    """A store file, Label Studio export or tasks file as a set named by its file name; a file that
    cannot be opened is a failed set naming it (it fails alone)."""
    label = name or Path(path).name
    try:
        return PredictionSet(label, open_input(path, root=root))
    except SvtrLabelError as exc:
        message = str(exc)
        return PredictionSet.failed(label, message if str(path) in message else f"{path}: {message}")


# --- a profile run on the truth's images -----------------------------------------------------


def require_corrected(truth: Store, truth_name: str = "truth") -> list[int]:
    """The ids of the corrected images of `truth`; none is an error naming `truth_name`."""
    ids = [i for i in truth.image_ids() if truth.is_corrected(i)]
    if not ids:
        raise DatasetError(f"{truth_name}: no corrected image (edited, reviewed, or annotated in Label Studio): "
                           "review some pages first, or pass the store or export that holds the corrections")
    return ids


def run_profile(truth: Store, engine: OcrEngine, source: ImageSource | None = None, name: str | None = None,
                on_page: Callable[[int], None] | None = None, build_seconds: float = 0.0) -> PredictionSet:
    """Run `engine` now on every corrected image of `truth` (read by `source`, default: files under
    the truth's root) and time it. An image that cannot be read is left out and listed; when none
    can be read the set fails. `on_page(n)` is told of every n pages done (a progress bar).
    `build_seconds`: what building `engine` took, counted as model loading (an engine whose weights
    are downloaded loads them when built); an engine loaded earlier in the process loads in 0 s."""
    label = name or f"profile {engine.profile.name}"
    source = source or ImageSource(truth.root)
    ids = require_corrected(truth)
    load_seconds = build_seconds + (0.0 if engine.loaded else _timed(engine.load)[1])
    preds = Store(":memory:", root=truth.root)
    unreadable: list[str] = []
    warmup = predict = 0.0
    pages = 0
    # Chunks of a few pages per pipeline: all pipelines busy, few decoded pages held at once.
    chunk = max(4, 2 * engine.workers)
    for start in range(0, len(ids), chunk):
        images = _read_images(truth, ids[start:start + chunk], source, unreadable)
        if images and not pages and not warmup:
            warmup = _timed(lambda: engine.predict([im for _, im in images[: engine.workers]]))[1]
        found, seconds = _timed(lambda: engine.predict([im for _, im in images]))
        predict += seconds
        pages += len(found)
        for (ref, _), page in zip(images, found):
            preds.add_page(page, image_ref=ref)
        if on_page and images:
            on_page(len(images))
    if not pages:
        first = f": {unreadable[0]}" if unreadable else ""
        return PredictionSet.failed(label, f"{label}: none of the truth's {len(ids)} corrected images could be read{first}")
    timing = Timing(engine.profile.name, load_seconds, warmup, pages, predict, engine.workers)
    return PredictionSet(label, preds, timing=timing, unreadable=tuple(unreadable))


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    out = call()
    return out, time.perf_counter() - started


def _read_images(truth: Store, ids: Sequence[int], source: ImageSource, unreadable: list[str]) -> list[tuple[str, DecodedImage]]:
    """(ref, decoded image) of each readable image; the error of each other one goes to `unreadable`."""
    out = []
    for image_id in ids:
        info = truth.get_image(image_id)
        if not info.ref:
            unreadable.append(f"image {image_id} ({info.sha256 or 'no hash'}): no file reference")
            continue
        try:
            found = source.read(info.ref, info.ls_task_id)
            out.append((info.ref, decode_image(found.data, found.name, limits=truth.limits)))
        except SvtrLabelError as exc:
            unreadable.append(str(exc) if info.ref in str(exc) else f"{info.ref}: {exc}")
    return out


# --- the comparison --------------------------------------------------------------------------


@dataclass(frozen=True)
class ComparedModel:
    """One model_version of one set, against the truth."""

    number: int  # 1, 2, ...: the column of the confidence table and the plot
    set_name: str
    model_version: str
    evaluation: VersionEvaluation
    timing: Timing | None

    @property
    def label(self) -> str:
        return f"{self.set_name} · {self.model_version or '(no model_version)'}"

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "label": self.label, "set": self.set_name, "model_version": self.model_version,
                "seconds_per_page": self.timing.seconds_per_page if self.timing else None,
                "timing": self.timing.to_dict() if self.timing else None, **self.evaluation.to_dict()}


@dataclass(frozen=True)
class SetResult:
    """One prediction set: its evaluation per model_version, or why it could not be compared."""

    name: str
    evaluation: Evaluation | None
    timing: Timing | None = None
    unreadable: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "error": self.error, "timing": self.timing.to_dict() if self.timing else None,
                "model_versions": sorted(self.evaluation.model_versions) if self.evaluation else [],
                "pred_images_without_truth": self.evaluation.pred_images_without_truth if self.evaluation else None,
                "unreadable_images": list(self.unreadable)}


@dataclass(frozen=True)
class Comparison:
    """Every set against one truth; `models` are the rows of the side-by-side table."""

    truth_images: int
    sets: tuple[SetResult, ...]
    models: tuple[ComparedModel, ...] = field(default=())

    @property
    def failures(self) -> tuple[SetResult, ...]:
        return tuple(s for s in self.sets if s.error)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as `svtr-label eval --json` writes it. With one set, its evaluation's keys
        (`model_versions`, `pred_images_without_truth`) are kept at the top, as before several sets."""
        out: dict[str, Any] = {"truth_images": self.truth_images, "models": [m.to_dict() for m in self.models],
                               "sets": [s.to_dict() for s in self.sets]}
        if len(self.sets) == 1 and self.sets[0].evaluation is not None:
            out.update(self.sets[0].evaluation.to_dict())
        return out


def compare_models(truth: Store, sets: Sequence[PredictionSet], truth_name: str = "truth") -> Comparison:
    """Each set's model_versions against the corrected pages of `truth`. Sets fail alone (their
    error is kept); a truth without any corrected image fails the whole comparison."""
    corrected = len(require_corrected(truth, truth_name))
    results, models = [], []
    for s in sets:
        result = _evaluate_set(truth, s)
        results.append(result)
        for version, data in (result.evaluation.model_versions.items() if result.evaluation else ()):
            models.append(ComparedModel(len(models) + 1, s.name, version, data, s.timing))
    return Comparison(corrected, tuple(results), tuple(models))


def _evaluate_set(truth: Store, s: PredictionSet) -> SetResult:
    if s.store is None:
        return SetResult(s.name, None, error=s.error or f"{s.name}: no predictions")
    try:
        return SetResult(s.name, evaluate(truth, s.store), s.timing, s.unreadable)
    except DatasetError as exc:
        return SetResult(s.name, None, s.timing, s.unreadable, error=f"{s.name}: {exc}")


# --- known truth for generated pages ---------------------------------------------------------


def known_truth_store(truth_json: str | Path) -> Store:
    """Generated pages with known text (the `truth.json` that svtr_label.core.synth writes next to
    them, {file: [{text, quad}]}) as an in-memory store of corrected pages: a truth to compare
    models on before anyone has corrected a page. Files listed but missing are left out."""
    path = Path(truth_json)
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not a readable truth.json of generated pages ({exc})") from None
    store = Store(":memory:", root=path.parent)
    for file_name, lines in sorted(listed.items()):
        image_path = path.parent / file_name
        if not image_path.is_file():
            continue
        image = read_image(image_path)
        regions = tuple(Region(f"t{i}", as_points(line["quad"]), line["text"]) for i, line in enumerate(lines))
        page = Page(image.width, image.height, image.sha256, regions, model_version=KNOWN_TRUTH_VERSION)
        image_id = store.add_page(page, image_ref=str(image_path))
        store.set_image_state(image_id, ReviewState.REVIEWED.value, who="truth.json")
    return store


# --- output ----------------------------------------------------------------------------------


def format_comparison(result: Comparison, thresholds: Sequence[float] = THRESHOLDS, failures: bool = True) -> str:
    """The side-by-side table (one row per model), then accuracy (coverage) vs confidence with one
    column per model, then (`failures`) the sets that could not be compared."""
    out = [f"{result.truth_images} corrected truth images; {len(result.models)} models compared", _side_by_side(result.models)]
    if len({m.evaluation.overall.images for m in result.models}) > 1:
        out.append("note: these models were scored on different numbers of images (images column): for a fair "
                   "comparison, predict the same pages with each")
    if result.models:
        out += ["", _confidence_columns(result.models, thresholds)]
    if failures:
        out += [f"not compared: {s.error}" for s in result.failures]
    return "\n".join(out)


_HEADER = f"{'#':>3}{'exact':>9}{'nospace':>9}{'ned':>9}{'det_H':>9}{'s/page':>9}{'load_s':>8}{'matched':>12}{'images':>8}  set · model_version"


def _side_by_side(models: Sequence[ComparedModel]) -> str:
    rows = [_HEADER]
    for m in models:
        o = m.evaluation.overall
        speed = f"{m.timing.seconds_per_page:>9.3f}{m.timing.model_load_seconds:>8.1f}" if m.timing else f"{'-':>9}{'-':>8}"
        rows.append(f"{m.number:>3}{o.line_acc:>9.4f}{o.line_acc_nospace:>9.4f}{o.norm_edit_dis:>9.4f}{o.det_hmean:>9.4f}"
                    f"{speed}{f'{o.matched}/{o.truth_lines}':>12}{o.images:>8}  {m.label}")
    return "\n".join(rows)


def _confidence_columns(models: Sequence[ComparedModel], thresholds: Sequence[float]) -> str:
    """Accuracy of the matched lines scoring at least t, and (their coverage), per model."""
    rows = ["accuracy (coverage) of matched lines scoring at least the threshold",
            f"{'score >=':>9}" + "".join(f"{'#' + str(m.number):>18}" for m in models)]
    tables = [{r.threshold: r for r in m.evaluation.confidence} for m in models]
    for t in thresholds:
        cells = [_confidence_cell(table.get(t)) for table in tables]
        rows.append(f"{t:>9.3f}" + "".join(f"{c:>18}" for c in cells))
    return "\n".join(rows)


def _confidence_cell(row: ConfidenceRow | None) -> str:
    if row is None:
        return "-"
    # No line scores this high: its accuracy is not 0, there is none.
    return f"{'-' if not row.lines else f'{row.accuracy:.4f}'} ({row.coverage:.3f})"


def plot_comparison(result: Comparison, path: Path) -> None:
    """One PNG with accuracy and coverage vs confidence for every compared model."""
    plot_confidence([(f"#{m.number} {m.label}", m.evaluation.confidence) for m in result.models], path)
