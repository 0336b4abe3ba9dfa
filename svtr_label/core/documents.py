"""Multi-page documents (PDFs, multi-page TIFFs) as page image files, one PNG per page.

Label Studio shows images, not PDFs: a document is labeled through its pages, rendered once into
a folder beside the output and named from the document's content hash (and the DPI), so a rerun
finds them and reuses them byte for byte (which keeps the prediction cache's hits). The limits of
single images hold per page (pixels, checked before a page is rendered) and per document (pages);
a document that cannot be read (damaged, password-protected) raises ImageError naming the file
and what to do, so that it fails alone.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import struct
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from PIL import Image

from svtr_label.core.images import _to_bgr, is_image_path
from svtr_label.errors import ImageError
from svtr_label.settings import ImageLimits

if TYPE_CHECKING:
    import pypdfium2

PDF_SUFFIXES = frozenset({".pdf"})
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
POINTS_PER_INCH = 72.0
# PDFium is not thread-safe: every call into it goes through this lock.
_PDFIUM = threading.Lock()


@dataclass(frozen=True)
class Document:
    """A document's pages as image files, in page order."""

    source: Path
    sha256: str
    pages: tuple[Path, ...]


def is_pdf_path(path: Path) -> bool:
    return path.suffix.lower() in PDF_SUFFIXES


def tiff_frames(path: Path) -> int:
    """Frames of a TIFF from its headers (1 when it cannot be read: the image decoder reports why)."""
    try:
        with Image.open(path) as img:
            return int(getattr(img, "n_frames", 1))
    except (OSError, SyntaxError, ValueError, struct.error):
        return 1


def is_document(path: Path) -> bool:
    """A PDF, or a TIFF of several frames (a one-frame TIFF stays an image)."""
    if is_pdf_path(path):
        return True
    return path.suffix.lower() in TIFF_SUFFIXES and path.is_file() and tiff_frames(path) > 1


def find_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Folders expanded into their images and PDFs (by suffix, sorted); files named explicitly
    are kept whatever their suffix, so a bad one is reported rather than ignored."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.is_file() and (is_image_path(q) or is_pdf_path(q))))
        else:
            found.append(p)
    return found


def page_folder(out_dir: Path, source: Path, sha256: str, dpi: int | None) -> Path:
    """`<out_dir>/<stem>-<sha8>[-<dpi>dpi]`: the same document at the same DPI always maps here,
    and two documents with one name (or one document at two DPIs) never share a folder."""
    stem = re.sub(r"[^\w.-]+", "_", source.stem)[:60] or "document"
    return out_dir / (f"{stem}-{sha256[:8]}" + (f"-{dpi}dpi" if dpi is not None else ""))


def page_name(source: Path, index: int) -> str:
    """`<stem>-p0001.png`: the document's name is in the file's own name too, since an evaluation
    may match pages by file name."""
    stem = re.sub(r"[^\w.-]+", "_", source.stem)[:60] or "document"
    return f"{stem}-p{index + 1:04d}.png"


def render_document(path: str | os.PathLike, out_dir: str | os.PathLike, dpi: int = 200,
                    limits: ImageLimits = ImageLimits()) -> Document:
    """Write the pages of a PDF (rendered at `dpi`) or of a multi-page TIFF (its frames) as PNG
    files under `out_dir`; pages written by an earlier run are reused. Raises ImageError naming
    the file when it cannot be read or a limit is exceeded."""
    source = Path(path)
    sha = _file_sha256(source)
    if is_pdf_path(source):
        folder = page_folder(Path(out_dir), source, sha, dpi)
        with _PDFIUM:
            pages = _render_pdf(source, folder, dpi, limits)
    else:
        folder = page_folder(Path(out_dir), source, sha, None)
        pages = _split_tiff(source, folder, limits)
    return Document(source, sha, tuple(pages))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not a document") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return digest.hexdigest()


def _check_pages(path: Path, count: int, limits: ImageLimits) -> None:
    if count > limits.max_pages:
        raise ImageError(f"{path}: {count} pages, over the {limits.max_pages}-page limit (SVTR_MAX_PAGES): "
                         "split the document or raise the limit")


def _check_pixels(path: Path, index: int, width: int, height: int, limits: ImageLimits, hint: str) -> None:
    if width * height > limits.max_pixels:
        raise ImageError(f"{path}: page {index + 1} is {width}x{height} pixels{hint}, over the {limits.max_pixels}-pixel "
                         "limit (SVTR_MAX_IMAGE_PIXELS): " + ("lower --dpi or raise the limit" if hint else "raise the limit"))


# --- PDF -------------------------------------------------------------------------------------


def _render_pdf(path: Path, folder: Path, dpi: int, limits: ImageLimits) -> list[Path]:
    pdf = _open_pdf(path)
    try:
        count = len(pdf)
        _check_pages(path, count, limits)
        pages = []
        for index in range(count):
            target = folder / page_name(path, index)
            if not target.is_file():  # written whole (renamed into place) by an earlier run: reused
                _render_page(pdf, path, index, dpi, limits, target)
            pages.append(target)
        return pages
    finally:
        pdf.close()


def _open_pdf(path: Path) -> "pypdfium2.PdfDocument":
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            raise ImageError(f"{path}: the PDF is password-protected; save a copy without the password "
                             "(e.g. `qpdf --decrypt --password=... in.pdf out.pdf`) and predict that") from None
        if code == pdfium_c.FPDF_ERR_SECURITY:
            raise ImageError(f"{path}: the PDF uses a security handler PDFium does not support; "
                             "save a decrypted copy and predict that") from None
        if code == pdfium_c.FPDF_ERR_SUCCESS:  # opened, but holds no page
            raise ImageError(f"{path}: the PDF has no pages") from None
        raise ImageError(f"{path}: not a readable PDF, damaged or truncated ({str(exc).rstrip('.')}); re-export it, or repair a "
                         "copy (e.g. `qpdf in.pdf out.pdf`) and predict that") from None


def _render_page(pdf: "pypdfium2.PdfDocument", path: Path, index: int, dpi: int, limits: ImageLimits, target: Path) -> None:
    import pypdfium2 as pdfium

    scale = dpi / POINTS_PER_INCH
    try:
        width_pt, height_pt = pdf.get_page_size(index)
        # The size checked is the size rendered (PDFium rounds the scaled box up).
        _check_pixels(path, index, math.ceil(width_pt * scale), math.ceil(height_pt * scale), limits, f" at {dpi} dpi")
        page = pdf[index]
        try:
            image = page.render(scale=scale, draw_annots=True).to_pil()
        finally:
            page.close()
    except pdfium.PdfiumError as exc:
        raise ImageError(f"{path}: page {index + 1} cannot be rendered ({str(exc).rstrip('.')}); the PDF may be damaged") from None
    _write_png(image, target)


# --- TIFF ------------------------------------------------------------------------------------


def _split_tiff(path: Path, folder: Path, limits: ImageLimits) -> list[Path]:
    try:
        with Image.open(path) as img:
            count = int(getattr(img, "n_frames", 1))
            _check_pages(path, count, limits)
            pages = []
            for index in range(count):
                target = folder / page_name(path, index)
                if not target.is_file():
                    img.seek(index)
                    _check_pixels(path, index, img.width, img.height, limits, "")
                    img.load()
                    _write_png(_upright(img), target)
                pages.append(target)
            return pages
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise ImageError(f"{path}: the TIFF is damaged or truncated ({exc})") from None


def _upright(frame: Image.Image) -> Image.Image:
    """The frame as the image decoder shows it (orientation applied, flattened on white): what is
    labeled must be what was predicted. Gray frames stay gray (a third of the PNG's size)."""
    bgr = _to_bgr(frame)
    if frame.mode in ("1", "L"):
        return Image.fromarray(bgr[:, :, 0], "L")
    return Image.fromarray(bgr[:, :, ::-1].copy(), "RGB")


# --- files -----------------------------------------------------------------------------------


def _write_png(image: Image.Image, target: Path) -> None:
    """Renamed into place once whole: a killed run never leaves a half page that a rerun would reuse."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, "PNG")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
