"""Image refs: what a task's `data.image` says, and the local file it names, if any.

Pure string and path logic shared by the writers of tasks (predict), the store (webhooks) and the
readers of images (fetch, sources): no network here. `/data/local-files/?d=` paths never leave
the document root, as Label Studio itself refuses.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, quote, unquote, urlparse, urlsplit

from svtr_label.errors import RefError

CLOUD_SCHEMES = ("s3", "gs", "gcs", "azure-blob")


@dataclass(frozen=True)
class ImageRef:
    """How `data.image` is written for the way Label Studio will serve the files.

    mode "local-files": `/data/local-files/?d=<path relative to root>` (Label Studio's local
    storage, with LOCAL_FILES_DOCUMENT_ROOT = root); "prefix": `<prefix><path relative to
    root>`; "path": the absolute path.
    """

    mode: Literal["local-files", "prefix", "path"] = "path"
    root: Path | None = None
    prefix: str = ""

    def __call__(self, path: Path) -> str:
        if self.mode == "path":
            return str(path.resolve())
        rel = self._relative(path)
        if self.mode == "local-files":
            return "/data/local-files/?d=" + quote(rel, safe="/")
        return self.prefix.rstrip("/") + "/" + quote(rel, safe="/")

    def _relative(self, path: Path) -> str:
        root = (self.root or Path.cwd()).resolve()
        full = path.resolve()
        try:
            rel = full.relative_to(root)
        except ValueError:
            raise RefError(f"{path} is not under the document root {root}: pass --root that contains it") from None
        return posixpath.join(*rel.parts)


LOCAL_FILES_PATH = "/data/local-files"


def resolve_local_files(ref: str, root: Path) -> Path | None:
    """The file a `/data/local-files/?d=<path>` URL names under `root`: the inverse of
    ImageRef("local-files"). None for any other URL. Raises RefError when `d` is missing or the
    path leaves `root` (checked after `..` and symlinks are resolved), as Label Studio refuses too."""
    try:
        parts = urlsplit(ref)
    except ValueError as exc:
        raise RefError(f"{ref}: not a valid URL ({exc})") from None
    # Label Studio (Django) serves /data/local%2Dfiles/ as /data/local-files/: so do we.
    if unquote(parts.path).rstrip("/") != LOCAL_FILES_PATH:
        return None
    found = parse_qs(parts.query).get("d") or [""]
    if len(found) > 1:
        # Label Studio would show the last one; reading any one would label the image not shown.
        raise RefError(f"{ref}: names {len(found)} files (d= given {len(found)} times); refused")
    rel = found[0]
    if not rel:
        raise RefError(f"{ref}: a local-files URL needs ?d=<path under the document root>")
    base = root.resolve()
    path = (base / rel).resolve()
    if not path.is_relative_to(base):
        raise RefError(f"{ref}: the path escapes LOCAL_FILES_DOCUMENT_ROOT ({root}); refused")
    return path


def document_root(root: Path | None = None) -> Path:
    """The folder /data/local-files/?d= paths are relative to: `root` (LOCAL_FILES_DOCUMENT_ROOT, read
    by the settings), else the current folder."""
    return root or Path.cwd()


def resolve_local(ref: str, root: Path | None = None, confined: bool = False) -> Path | None:
    """The local file behind an image ref (a path, file:// URL, or /data/local-files/?d=), if it exists.

    `confined` is for refs from untrusted senders (webhooks): only `/data/local-files/?d=` refs
    that stay inside the document root are followed; plain paths and file:// are not.
    """
    try:
        path = resolve_local_files(ref, document_root(root))
    except RefError:  # no ?d=, or a path leaving the document root
        return None
    if path is None:
        if confined or ("://" in ref and not ref.startswith("file://")) or ref.startswith("/data/"):
            return None
        if ref.startswith("file://"):
            path = Path(unquote(urlparse(ref).path))
        else:
            path = Path(ref)
            if not path.is_absolute() and root is not None:
                path = root / path
    return path if path.is_file() else None


def served_remotely(ref: str) -> bool:
    """True for refs only a server can answer: Label Studio paths, http(s) and cloud storage URIs."""
    scheme = urlsplit(ref).scheme.lower()
    return ref.startswith("/data/") or scheme in ("http", "https", *CLOUD_SCHEMES)


def has_dot_segments(path: str) -> bool:
    """Whether a URL path holds `.` or `..` segments, plain or percent-encoded: an HTTP client
    collapses them, so `/data/../api/...` would reach Label Studio's API with our key."""
    return any(segment in (".", "..") for segment in unquote(path).replace("\\", "/").split("/"))
