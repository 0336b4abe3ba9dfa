"""What a scale-out job reads: local folders and files, `s3://` and `gs://` prefixes, manifests
(txt, jsonl or parquet of URIs) and http(s) URLs.

Listing reads names only, never bytes, so that a rerun drops the inputs already done before
anything is downloaded. Object storage goes through pyarrow's file systems (installed with the
`ray` extra); they take their credentials and endpoint the standard way (AWS_* variables,
`~/.aws`, AWS_ENDPOINT_URL for an S3-compatible server; GOOGLE_APPLICATION_CREDENTIALS).
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from svtr_label.core.documents import is_pdf_path
from svtr_label.core.images import find_images, is_image_path
from svtr_label.errors import ImageError, ScaleError, UsageError
from svtr_label.labelstudio.fetch import ImageFetcher

OBJECT_SCHEMES = ("s3://", "gs://")
WEB_SCHEMES = ("http://", "https://")
MANIFEST_SUFFIXES = (".txt", ".jsonl", ".parquet")
MANIFEST_KEYS = ("uri", "image", "path", "url")


def is_object_uri(uri: str) -> bool:
    return uri.startswith(OBJECT_SCHEMES)


def list_inputs(sources: Sequence[str]) -> list[str]:
    """Every image URI the sources name, each once, in the order given (folders and prefixes sorted).
    Local images are given as absolute paths; a manifest's relative paths are relative to it."""
    uris: list[str] = []
    for source in sources:
        uris += _expand(source)
    return list(dict.fromkeys(uris))


def _expand(source: str) -> list[str]:
    if is_object_uri(source):
        return list_object_prefix(source)
    if source.startswith(WEB_SCHEMES):
        return [source]
    path = Path(source)
    if path.is_dir():
        return [str(p.resolve()) for p in find_images([path])]
    if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        return read_manifest(path)
    if path.is_file():
        return [str(path.resolve())]
    raise UsageError(f"{source}: no such file, folder or manifest (give folders, image files, s3:// or gs:// "
                     f"prefixes, or a manifest ending in {', '.join(MANIFEST_SUFFIXES)})")


def read_manifest(path: Path) -> list[str]:
    """The URIs of a manifest: one per line (.txt), one JSON string or object with a `uri` key per
    line (.jsonl), or the `uri` column (.parquet)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        names = _parquet_column(path)
    else:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        entries = [ln for ln in lines if ln and not ln.startswith("#")]
        names = [_jsonl_uri(path, n, e) for n, e in enumerate(entries, 1)] if suffix == ".jsonl" else entries
    return [_anchored(name, path.parent) for name in names]


def _jsonl_uri(path: Path, line: int, entry: str) -> str:
    try:
        value: Any = json.loads(entry)
    except ValueError:
        raise UsageError(f"{path}, entry {line}: not JSON; a .jsonl manifest holds one string or object per line") from None
    if isinstance(value, dict):
        value = next((value[k] for k in MANIFEST_KEYS if isinstance(value.get(k), str)), None)
    if not isinstance(value, str):
        raise UsageError(f"{path}, entry {line}: no URI; give a string or an object with a 'uri' key")
    return value


def _parquet_column(path: Path) -> list[str]:
    pq = _pyarrow_module("pyarrow.parquet")
    schema = pq.read_schema(path)
    column = next((k for k in MANIFEST_KEYS if k in schema.names), None)
    if column is None:
        raise UsageError(f"{path}: no 'uri' column (columns: {', '.join(schema.names)})")
    return [v for v in pq.read_table(path, columns=[column]).column(column).to_pylist() if v]


def _anchored(name: str, base: Path) -> str:
    if name.startswith(OBJECT_SCHEMES + WEB_SCHEMES):
        return name
    return str((base / name).resolve())


# --- object storage -----------------------------------------------------------------------------


def _pyarrow_module(name: str) -> Any:
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        raise ScaleError("object storage and parquet need pyarrow: pip install 'svtr-label[ray]'") from None


@functools.lru_cache(maxsize=16)
def _filesystem(scheme_and_bucket: str) -> Any:
    """One pyarrow file system per bucket and process (each holds its own connections)."""
    fs = _pyarrow_module("pyarrow.fs")
    try:
        filesystem, _ = fs.FileSystem.from_uri(scheme_and_bucket)
    except Exception as exc:  # pyarrow raises ArrowInvalid and OSError subclasses for bad URIs and credentials
        raise ScaleError(f"{scheme_and_bucket}: cannot open ({exc})") from None
    return filesystem


def _split_object_uri(uri: str) -> tuple[str, str]:
    """("s3://bucket", "bucket/key") for "s3://bucket/key": the file system and its path."""
    scheme, rest = uri.split("://", 1)
    bucket = rest.split("/", 1)[0]
    return f"{scheme}://{bucket}", rest.rstrip("/")


def list_object_prefix(prefix: str) -> list[str]:
    """The image and PDF objects under an s3:// or gs:// prefix (a single object is itself), sorted."""
    fs = _pyarrow_module("pyarrow.fs")
    base, path = _split_object_uri(prefix)
    scheme = prefix.split("://", 1)[0]
    filesystem = _filesystem(base)
    try:
        info = filesystem.get_file_info(path)
        if info.type == fs.FileType.File:
            return [prefix]
        found = filesystem.get_file_info(fs.FileSelector(path, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise ScaleError(f"{prefix}: cannot list ({exc})") from None
    return sorted(f"{scheme}://{f.path}" for f in found if f.type == fs.FileType.File and (is_image_path(Path(f.path)) or is_pdf_path(Path(f.path))))


# --- reading one input --------------------------------------------------------------------------


def is_remote(uri: str) -> bool:
    return uri.startswith(OBJECT_SCHEMES + WEB_SCHEMES)


def is_remote_pdf(uri: str) -> bool:
    """An s3://, gs:// or http(s) input named as a PDF (its query string aside)."""
    return is_remote(uri) and is_pdf_path(Path(uri.split("?", 1)[0]))


def download(uri: str, folder: Path, max_bytes: int, fetcher: ImageFetcher | None = None) -> Path:
    """A remote input's bytes (at most `max_bytes`) as a file under `folder`, keeping the object's
    own name (a document's pages are named after it), in a subfolder of its own per URI."""
    data = read_input(uri, max_bytes, fetcher)
    target = folder / hashlib.sha256(uri.encode()).hexdigest()[:16] / (Path(uri.split("?", 1)[0]).name or "document")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def read_input(uri: str, max_bytes: int, fetcher: ImageFetcher | None = None) -> bytes:
    """The bytes of one input, never more than `max_bytes` (SVTR_MAX_IMAGE_BYTES). http(s) URLs go
    through the fetcher and its address policy; without one they are refused."""
    if is_object_uri(uri):
        return _read_object(uri, max_bytes)
    if uri.startswith(WEB_SCHEMES):
        if fetcher is None:
            raise ImageError(f"{uri}: http(s) inputs need an image fetcher")
        return fetcher.fetch(uri)
    return _read_file(Path(uri), max_bytes)


def _too_large(uri: str, size: int, max_bytes: int) -> ImageError:
    return ImageError(f"{uri}: {size} bytes, over the {max_bytes}-byte limit (SVTR_MAX_IMAGE_BYTES)")


def _read_file(path: Path, max_bytes: int) -> bytes:
    with path.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _too_large(str(path), path.stat().st_size, max_bytes)
    return data


def _read_object(uri: str, max_bytes: int) -> bytes:
    base, path = _split_object_uri(uri)
    filesystem = _filesystem(base)
    try:
        with filesystem.open_input_file(path) as fh:
            if fh.size() > max_bytes:
                raise _too_large(uri, fh.size(), max_bytes)
            return bytes(fh.read())
    except FileNotFoundError:
        raise ImageError(f"{uri}: no such object") from None
    except OSError as exc:
        raise ImageError(f"{uri}: cannot read ({exc})") from None


