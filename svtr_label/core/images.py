"""Decode user images into the arrays the OCR pipeline expects, once and correctly.

Every image enters the project here: EXIF orientation applied, transparency composited on
white (on black when the opaque pixels are light: white text on a transparent background), palette / 1-bit / 16-bit / CMYK converted, and size limits checked before the pixels
are decoded, so a decompression bomb fails its own task and nothing else.
"""

from __future__ import annotations

import hashlib
import io
import struct
import os
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from svtr_label.errors import ImageError
from svtr_label.settings import ImageLimits

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})

# What to do with a document where an image was expected (Label Studio shows images, not documents).
RENDER_PAGES_HINT = ("`svtr-label predict FILE` renders its pages into images, a task each or one multi-page task "
                     "(local files; with --ray also PDFs at s3://, gs:// or http(s) addresses)")

# Pillow's own bomb check only warns below 2x its limit; we check size ourselves first.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class DecodedImage:
    """An image ready for inference: BGR uint8 pixels in display orientation (EXIF applied)."""

    bgr: np.ndarray = field(repr=False)
    sha256: str
    name: str = ""

    @property
    def width(self) -> int:
        return int(self.bgr.shape[1])

    @property
    def height(self) -> int:
        return int(self.bgr.shape[0])

    def rgb(self) -> np.ndarray:
        return self.bgr[:, :, ::-1]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_image(
    data: bytes,
    name: str = "image",
    *,
    limits: ImageLimits = ImageLimits(),
    sha256: str | None = None,
) -> DecodedImage:
    """Decode image bytes. Raises ImageError naming `name` when they are not a usable image.
    `sha256`: the bytes' hash when the caller has it already (a cache lookup needed it first)."""
    with _reading(name):
        img = _open_within(data, name, limits)
        img.load()
        bgr = _to_bgr(img)
    return DecodedImage(bgr=bgr, sha256=sha256 or sha256_bytes(data), name=name)


def image_size(data: bytes, name: str = "image", limits: ImageLimits = ImageLimits()) -> tuple[int, int]:
    """Width and height from the image's header, within the limits, without decoding its pixels."""
    with _reading(name):
        return _open_within(data, name, limits).size
    raise AssertionError("unreachable")  # _reading re-raises every error as ImageError


@contextmanager
def _reading(name: str) -> Iterator[None]:
    """Pillow's many ways to say "damaged" as one ImageError naming the image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, struct.error, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: the image is damaged or truncated ({exc})") from None


def _open_within(data: bytes, name: str, limits: ImageLimits) -> Image.Image:
    """The image opened lazily (header only), refused when its bytes or pixels exceed the limits."""
    if len(data) == 0:
        raise ImageError(f"{name}: the file is empty")
    if len(data) > limits.max_bytes:
        raise ImageError(f"{name}: {len(data)} bytes exceeds the {limits.max_bytes}-byte limit (SVTR_MAX_IMAGE_BYTES)")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        if data.startswith(b"%PDF-"):
            raise ImageError(f"{name}: a PDF document, not an image: {RENDER_PAGES_HINT}") from None
        raise ImageError(f"{name}: not an image Pillow can read (is it a {Path(name).suffix or 'binary'} file?)") from None
    pages = getattr(img, "n_frames", 1) if img.format == "TIFF" else 1
    if pages > 1:
        # Decoding it would read its first page alone and drop the others without a word.
        raise ImageError(f"{name}: a TIFF of {pages} pages, not one image: {RENDER_PAGES_HINT}")
    w, h = img.size
    if w * h > limits.max_pixels:
        raise ImageError(
            f"{name}: {w}x{h} pixels exceeds the {limits.max_pixels}-pixel limit (SVTR_MAX_IMAGE_PIXELS);"
            " downscale the image or raise the limit"
        )
    return img


def read_image(path: str | os.PathLike, limits: ImageLimits = ImageLimits()) -> DecodedImage:
    """Read and decode an image file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{p}: is a folder, not an image") from None
    except OSError as exc:
        raise ImageError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, str(p), limits=limits)


# EXIF orientation -> the transpose that shows the image upright (as browsers and Label Studio do).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation (1 = upright); 1 when the EXIF block cannot be read."""
    try:
        value = img.getexif().get(0x0112, 1)
        return int(value) if int(value) in _UPRIGHT else 1
    except (OSError, SyntaxError, ValueError, TypeError, struct.error):
        return 1  # a damaged EXIF block does not make the pixels unusable


def _to_bgr(img: Image.Image) -> np.ndarray:
    # Not ImageOps.exif_transpose: it also re-serializes the EXIF block, which raises on some
    # slightly corrupt ones (a SHORT tag holding 70000, a NaN rational) although the pixels are fine.
    method = _UPRIGHT.get(exif_orientation(img))
    if method is not None:
        img = img.transpose(method)
    if img.mode in ("1", "L"):
        # Scans are mostly gray: replicate one plane into three instead of going through a PIL RGB
        # image and two full copies (decoding a 7700x7700 1-bit page peaked 0.62 GB above start that way, 0.34 GB this way).
        gray = np.asarray(img.convert("L"), dtype=np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    rgb = _flatten_to_rgb(img)
    arr = np.asarray(rgb, dtype=np.uint8)
    return np.ascontiguousarray(arr[:, :, ::-1])


def _flatten_to_rgb(img: Image.Image) -> Image.Image:
    """RGB, whatever the mode; transparency on the background that keeps the text visible."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 1.0
        scale = 255.0 / hi if hi > 255 else 1.0
        img = Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, background_for(rgba))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode == "RGB":
        return img
    return img.convert("RGB")


LIGHT_CONTENT = 160  # mean luminance of the opaque pixels above which they get a dark background


def background_for(rgba: Image.Image) -> tuple[int, int, int, int]:
    """The colour transparency is composited on: white, unless the opaque pixels are light (white
    text on a transparent background reads as nothing on white), then black."""
    alpha = np.asarray(rgba.getchannel("A"))
    opaque = alpha >= 128
    if not opaque.any():
        return (255, 255, 255, 255)
    luminance = np.asarray(rgba.convert("RGB").convert("L"))[opaque]
    return (0, 0, 0, 255) if float(luminance.mean()) > LIGHT_CONTENT else (255, 255, 255, 255)


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def find_images(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand folders into the image files under them (by suffix, sorted); files named
    explicitly are kept whatever their suffix, so a bad one is reported rather than ignored."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.is_file() and is_image_path(q)))
        else:
            found.append(p)
    return found
