"""The export formats: PaddleOCR (PPOCRLabel layout), PaddleX det / rec dataset folders,
ICDAR 2015 and Label Studio tasks. Each writer fills an ExportDir and returns its counts."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from svtr_label.core.geometry import bounding_quad
from svtr_label.dataset.samples import (
    ExportDir,
    ExportError,
    LoadedImage,
    Sample,
    collect_samples,
    crop_lines,
    dumps,
    encode_png,
    load_image,
    num,
    split_val,
)
from svtr_label.dataset.validate import Issue, Report, Rules, validate
from svtr_label.labelstudio.format import load_config
from svtr_label.labelstudio.sources import ImageSource
from svtr_label.store import Store

FORMATS = ("paddleocr", "paddlex-det", "paddlex-rec", "icdar2015", "label-studio")
# Which checks each format needs: detection sets only care about outlines.
TARGETS = {"paddleocr": ("det", "rec"), "paddlex-det": ("det",), "paddlex-rec": ("rec",), "icdar2015": ("det",), "label-studio": ()}
ON_INVALID = ("fail", "drop", "report")
EXIT_INVALID = 1  # fail: nothing written
EXIT_REPORTED = 3  # report: valid samples written, invalid ones listed


@dataclass
class ExportOptions:
    format: str
    out: Path
    val_fraction: float = 0.1
    seed: int = 0
    rules: Rules = field(default_factory=Rules)
    dict_bytes: bytes | None = None  # dict.txt content, byte for byte the target model's
    dict_source: str = ""
    on_invalid: str = "fail"
    include_predictions: bool = False
    root: Path | None = None  # where local refs live; default LOCAL_FILES_DOCUMENT_ROOT, else cwd
    images: ImageSource | None = None  # default: local files under root only (Services.image_source adds Label Studio)
    progress: Callable[[int, int], None] | None = None  # (images done, images in all), after each image


@dataclass
class ExportResult:
    path: Path | None  # None when nothing was written
    manifest: dict[str, Any]
    report: Report
    exit_code: int


@dataclass
class _Job:
    """What a format writer works from."""

    store: Store
    samples: list[Sample]
    val: set[str]
    report: Report
    opts: ExportOptions
    source: ImageSource
    counts: Counter = field(default_factory=Counter)

    def split(self, sample: Sample) -> str:
        return "val" if sample.stem in self.val else "train"

    def det_dropped(self) -> set[str]:
        return {image for image, _ in self.report.bad("det")}

    def rec_dropped(self) -> set[tuple[str, str]]:
        return self.report.bad("rec")


def run_export(store: Store, opts: ExportOptions) -> ExportResult:
    """Validate, then write the export atomically. Invalid samples: see ExportOptions.on_invalid."""
    if opts.format not in FORMATS:
        raise ExportError(f"unknown format {opts.format!r}: one of {', '.join(FORMATS)}")
    if opts.on_invalid not in ON_INVALID:
        raise ExportError(f"--on-invalid must be one of {', '.join(ON_INVALID)}")
    if opts.format == "paddlex-rec" and opts.dict_bytes is None:
        raise ExportError("paddlex-rec needs the target model's dictionary: pass --dict FILE, --rec-model-dir DIR, --profile bundled or --train-config YML")
    samples, skipped = collect_samples(store, include_predictions=opts.include_predictions or opts.format == "label-studio")
    if not samples:
        raise ExportError(f"nothing to export: {skipped} images hold predictions only (no corrections); pass --include-predictions to export them")
    targets = TARGETS[opts.format]
    report = validate([(s.ref, s.page) for s in samples], opts.rules, targets) if targets else Report()
    if not report.ok and opts.on_invalid == "fail":
        return ExportResult(None, {}, report, EXIT_INVALID)
    source = opts.images or ImageSource(opts.root)
    job = _Job(store, samples, split_val(samples, opts.val_fraction, opts.seed), report, opts, source)
    job.counts["skipped_uncorrected"] = skipped
    out = ExportDir(opts.out)
    try:
        WRITERS[opts.format](out, job)
        if not report.ok and opts.on_invalid == "fail":  # a problem only seen while cropping
            out.abort()
            return ExportResult(None, {}, report, EXIT_INVALID)
        manifest = _manifest(job)
        path = out.commit(manifest)
    except BaseException:
        out.abort()
        raise
    return ExportResult(path, manifest, report, 0 if report.ok or opts.on_invalid == "drop" else EXIT_REPORTED)


def _manifest(job: _Job) -> dict[str, Any]:
    opts, samples = job.opts, job.samples
    manifest: dict[str, Any] = {
        "format": opts.format,
        "counts": dict(sorted(job.counts.items())),
        "model_versions": sorted({s.model_version for s in samples if s.model_version}),
        "reviewers": sorted({r for s in samples for r in s.reviewers}),
        "split": {"seed": opts.seed, "val_fraction": opts.val_fraction, "val_images": sorted(job.val)},
        "on_invalid": opts.on_invalid,
        "max_text_length": opts.rules.max_text_length,
        "issues": [i.to_dict() for i in job.report.issues],
    }
    if opts.dict_bytes is not None:
        manifest["dictionary"] = {"source": opts.dict_source, "sha256": hashlib.sha256(opts.dict_bytes).hexdigest()}
    return manifest


# --- shared pieces ---------------------------------------------------------------------------


def _det_label(sample: Sample) -> str:
    """PaddleOCR's detection label: every region, '###' ones included (they mark ignore areas)."""
    return dumps([{"transcription": r.text, "points": [[num(x), num(y)] for x, y in r.points]} for r in sample.page.regions])


def _loaded(job: _Job) -> Iterator[tuple[Sample, LoadedImage]]:
    """Each sample with its image, one at a time (an export may hold more pixels than memory)."""
    for done, sample in enumerate(job.samples, 1):
        yield sample, load_image(sample, job.source)
        if job.opts.progress is not None:
            job.opts.progress(done, len(job.samples))


def _images(out: ExportDir, job: _Job, folder: str = "images") -> Iterator[tuple[Sample, LoadedImage, str | None]]:
    """Each sample's image, written when detection keeps it: (sample, image, rel path or None)."""
    dropped = job.det_dropped()
    for s, img in _loaded(job):
        rel = None
        if s.ref not in dropped:
            rel = f"{folder}/{s.stem}{img.suffix}"
            out.write(rel, img.data)
            job.counts["det_images"] += 1
            job.counts[f"det_{job.split(s)}_images"] += 1
            job.counts["det_regions"] += len(s.page.regions)
            job.counts["det_ignore_regions"] += sum(r.illegible for r in s.page.regions)
        else:
            job.counts["dropped_det_images"] += 1
        yield s, img, rel


def _crops(out: ExportDir, job: _Job, sample: Sample, img: LoadedImage, folder: str) -> list[tuple[str, str]]:
    """Write the sample's recognition crops; returns (rel path, text) in page order."""
    bad = job.rec_dropped()
    keep = []
    for index, region in enumerate(sample.page.regions):
        if region.illegible:  # '###' is detection-only, never a recognition label
            job.counts["rec_skipped_illegible"] += 1
        elif (sample.ref, region.id) in bad:
            job.counts["dropped_rec_lines"] += 1
        else:
            keep.append((index, region))
    rows = []
    for (index, region), crop in zip(keep, crop_lines(img.decoded.bgr, [r for _, r in keep])):
        if crop.size == 0:
            job.report.issues.append(Issue(sample.ref, region.id, "empty_crop", "the outline crops to an empty image", "rec"))
            job.counts["dropped_rec_lines"] += 1
            continue
        rel = f"{folder}/{sample.stem}_{index:03d}.png"
        out.write(rel, encode_png(crop))
        rows.append((rel, region.text))
        job.counts["rec_lines"] += 1
        job.counts[f"rec_{job.split(sample)}_lines"] += 1
    return rows


def _by_split(job: _Job, rows: Sequence[tuple[Sample, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"train": [], "val": []}
    for sample, line in rows:
        out[job.split(sample)].append(line)
    return out


# --- formats ---------------------------------------------------------------------------------


def write_paddleocr(out: ExportDir, job: _Job) -> None:
    """PPOCRLabel's layout: images/ + Label.txt, crop_img/ + rec_gt.txt, and the split lists."""
    det_rows, rec_rows = [], []
    for sample, img, rel in _images(out, job):
        if rel is not None:
            det_rows.append((sample, f"{rel}\t{_det_label(sample)}"))
        rec_rows += [(sample, f"{crop}\t{text}") for crop, text in _crops(out, job, sample, img, "crop_img")]
    out.write_lines("Label.txt", [line for _, line in det_rows])
    out.write_lines("rec_gt.txt", [line for _, line in rec_rows])
    for split, lines in _by_split(job, det_rows).items():
        out.write_lines(f"det_gt_{split}.txt", lines)
    for split, lines in _by_split(job, rec_rows).items():
        out.write_lines(f"rec_gt_{split}.txt", lines)


def write_paddlex_det(out: ExportDir, job: _Job) -> None:
    rows = [(s, f"{rel}\t{_det_label(s)}") for s, _, rel in _images(out, job) if rel is not None]
    for split, lines in _by_split(job, rows).items():
        out.write_lines(f"{split}.txt", lines)


def write_paddlex_rec(out: ExportDir, job: _Job) -> None:
    rows = []
    for sample, img in _loaded(job):
        rows += [(sample, f"{crop}\t{text}") for crop, text in _crops(out, job, sample, img, "images")]
    for split, lines in _by_split(job, rows).items():
        out.write_lines(f"{split}.txt", lines)
    assert job.opts.dict_bytes is not None
    out.write("dict.txt", job.opts.dict_bytes)


def write_icdar2015(out: ExportDir, job: _Job) -> None:
    """images/ + gt/gt_<stem>.txt ('x1,y1,...,x4,y4,text', '###' = don't care) + split lists."""
    rows = []
    for sample, _, rel in _images(out, job):
        if rel is None:
            continue
        lines = []
        for region in sample.page.regions:
            quad = bounding_quad(region.points)
            lines.append(",".join(str(int(round(v))) for p in quad for v in p) + "," + region.text)
        out.write_lines(f"gt/gt_{sample.stem}.txt", lines)
        rows.append((sample, Path(rel).name))
    for split, lines in _by_split(job, rows).items():
        out.write_lines(f"{split}.txt", lines)


def write_label_studio(out: ExportDir, job: _Job) -> None:
    tasks = job.store.to_label_studio_tasks(load_config(None), [s.image_id for s in job.samples])
    job.counts["tasks"] = len(tasks)
    job.counts["annotated_tasks"] = sum(1 for t in tasks if t.get("annotations"))
    out.write("tasks.json", json.dumps(tasks, ensure_ascii=False, indent=1, sort_keys=True) + "\n")


WRITERS: dict[str, Callable[[ExportDir, _Job], None]] = {
    "paddleocr": write_paddleocr,
    "paddlex-det": write_paddlex_det,
    "paddlex-rec": write_paddlex_rec,
    "icdar2015": write_icdar2015,
    "label-studio": write_label_studio,
}
