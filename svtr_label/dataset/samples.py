"""What every export format shares: the samples to write, their images, the split, the crops,
and writing a folder atomically with its manifest."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Sequence
from urllib.parse import urlsplit

import numpy as np

from svtr_label.core.geometry import bounding_quad
from svtr_label.core.images import DecodedImage, decode_image, exif_orientation
from svtr_label.core.page import Page, Region
from svtr_label.errors import ExportError, ImageError
from svtr_label.labelstudio.sources import ImageSource
from svtr_label.settings import quiet_third_parties
from svtr_label.store import Store


@dataclass(frozen=True)
class Sample:
    """One image to export: its page (corrections applied) and where it came from."""

    image_id: int
    ref: str
    page: Page
    corrected: bool
    reviewers: tuple[str, ...]
    stem: str  # unique, stable file stem in the export
    task_id: int | None = None  # Label Studio's, for refs only it can presign

    @property
    def model_version(self) -> str:
        return self.page.model_version


def collect_samples(store: Store, include_predictions: bool = False) -> tuple[list[Sample], int]:
    """Corrected (or reviewed) images, plus uncorrected predictions when asked.

    Returns the samples (sorted by stem, so input order never changes the files) and how
    many images were left out for having no corrections.
    """
    samples, skipped = [], 0
    for image_id in store.image_ids():
        corrected = store.is_corrected(image_id)
        if not corrected and not include_predictions:
            skipped += 1
            continue
        info = store.get_image(image_id)
        page = store.current_page(image_id)
        ref = info.ref or info.sha256 or str(image_id)
        stem = _stem(ref, info.sha256 or page.sha256, image_id)
        samples.append(Sample(image_id, ref, page, corrected, tuple(store.reviewers(image_id)), stem, info.ls_task_id))
    samples.sort(key=lambda s: s.stem)
    return samples, skipped


def _stem(ref: str, sha256: str | None, image_id: int) -> str:
    """`<file stem>_<hash prefix>`: readable, and unique even when two folders hold a.jpg."""
    base = re.sub(r"[^\w.-]+", "_", Path(ref.split("?d=")[-1]).stem)[:60] or "image"
    return f"{base}_{(sha256 or hashlib.sha256(f'{image_id}:{ref}'.encode()).hexdigest())[:8]}"


# --- images ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedImage:
    decoded: DecodedImage
    data: bytes  # the bytes to write into the export
    suffix: str


def load_image(sample: Sample, source: ImageSource) -> LoadedImage:
    """The sample's pixels, checked against what was labeled (hash, size)."""
    try:
        found = source.read(sample.ref, sample.task_id)
    except ImageError as exc:
        raise ExportError(f"{exc} (image id {sample.image_id})") from None
    data, name = found.data, found.name
    decoded = decode_image(data, name)
    if sample.page.sha256 and decoded.sha256 != sample.page.sha256:
        raise ExportError(f"image {name} changed since it was labeled (sha256 {decoded.sha256[:12]} != {sample.page.sha256[:12]})")
    if (decoded.width, decoded.height) != (sample.page.width, sample.page.height):
        raise ExportError(
            f"image {name} is {decoded.width}x{decoded.height} but was labeled as {sample.page.width}x{sample.page.height}"
        )
    if _exif_rotated(data):
        # Labels are in display orientation; trainers read raw pixels: write the upright pixels.
        return LoadedImage(decoded, encode_png(decoded.bgr), ".png")
    return LoadedImage(decoded, data, _suffix(name))


def _suffix(name: str) -> str:
    """The file type a path or URL names (`.jpg` of `/data/upload/3/ab-page.jpg?x=1`), else `.png`."""
    suffix = PurePosixPath(urlsplit(name).path if "://" in name or name.startswith("/data/") else name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".png"


def _exif_rotated(data: bytes) -> bool:
    """Whether the decoder turned these bytes upright (the same reading of EXIF as decode_image)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:  # decode_image already accepted the bytes
        return exif_orientation(img) != 1


def encode_png(bgr: np.ndarray) -> bytes:
    """Lossless and deterministic: the same pixels always give the same bytes."""
    import cv2

    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise ExportError("PNG encoding failed")
    return buf.tobytes()


_cropper: Any = None


def crop_lines(bgr: np.ndarray, regions: Sequence[Region]) -> list[np.ndarray]:
    """Line crops exactly as the pipeline makes them for recognition: PaddleX's own
    CropByPolys (quad mode) on each region's quad (any polygon: its minimum-area rectangle)."""
    global _cropper
    if _cropper is None:
        quiet_third_parties()
        from paddlex.inference.pipelines.components import CropByPolys

        _cropper = CropByPolys(det_box_type="quad")
    if not regions:
        return []
    quads = [np.asarray(bounding_quad(r.points), dtype=np.float32) for r in regions]
    return list(_cropper(bgr, quads))


# --- split -----------------------------------------------------------------------------------


def split_val(samples: Sequence[Sample], val_fraction: float, seed: int) -> set[str]:
    """Stems of the validation images: one seeded draw over images (never over lines), so a
    page's crops never sit on both sides, and det and rec share the partition."""
    if not 0.0 <= val_fraction < 1.0:
        raise ExportError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    keys = sorted(s.page.sha256 or s.stem for s in samples)
    by_key = {s.page.sha256 or s.stem: s.stem for s in samples}
    random.Random(seed).shuffle(keys)
    n = len(keys)
    n_val = round(n * val_fraction)
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)  # both lists non-empty whenever possible
    return {by_key[k] for k in keys[:n_val]}


# --- files -----------------------------------------------------------------------------------


def num(v: float) -> float | int:
    """A coordinate for label files: 2 decimals, integers written as integers."""
    r = round(float(v), 2)
    return int(r) if r == int(r) else r


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


class ExportDir:
    """A folder written in a temporary sibling, then renamed into place in one step.

    A killed export leaves the target untouched (the old export, or nothing); the next
    export into the same parent removes the dead one's temporary folder.
    """

    def __init__(self, target: str | os.PathLike) -> None:
        self.target = Path(target).resolve()
        self.target.parent.mkdir(parents=True, exist_ok=True)
        if self.target.exists() and any(self.target.iterdir()) and not (self.target / "manifest.json").is_file():
            raise ExportError(f"{self.target} exists and is not an svtr-label export: choose an empty or new --out folder")
        _remove_dead_temps(self.target)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.tmp-{os.getpid()}-", dir=self.target.parent))
        self.files: dict[str, str] = {}

    def write(self, rel: str, data: bytes | str) -> None:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        path = self.tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
        self.files[rel] = hashlib.sha256(raw).hexdigest()

    def write_lines(self, rel: str, lines: Iterable[str]) -> None:
        # "\n" only: a CR would end up inside PaddleOCR's labels.
        self.write(rel, "".join(line + "\n" for line in lines))

    def commit(self, manifest: dict[str, Any]) -> Path:
        manifest = {**manifest, "files": dict(sorted(self.files.items()))}
        (self.tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        _fsync_tree(self.tmp)
        old = None
        if self.target.exists():
            old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
            os.replace(self.target, old)
        os.replace(self.tmp, self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.target

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _remove_dead_temps(target: Path) -> None:
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        pid = leftover.name.split(".tmp-")[-1].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_tree(folder: Path) -> None:
    """Flush file contents before the rename publishes them."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
