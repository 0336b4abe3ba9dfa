"""The bytes of a stored image, wherever its ref points: one reader for the exporters and the widgets.

- a path, a `file://` URL, or `/data/local-files/?d=` under the document root: read from disk;
- anything Label Studio serves (`/data/upload/...`, its other paths, its local files when they are
  not on this machine, `s3://`/`gs://`/`azure-blob://` through the task's presign endpoint) and
  `http(s)://` hosts the fetch policy allows: fetched by `ImageFetcher`, with the project's
  Label Studio URL and API key.

Local files never need Label Studio; the fetcher is built on the first ref that does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from svtr_label.errors import FetchError, SourceError
from svtr_label.labelstudio.fetch import ImageFetcher
from svtr_label.labelstudio.refs import LOCAL_FILES_PATH, resolve_local, served_remotely
from svtr_label.settings import FetchSettings

_ASK_LABEL_STUDIO = "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (svtr-label export: --url, --api-key) to download it"


@dataclass(frozen=True)
class SourcedImage:
    data: bytes
    name: str  # the local file it was read from, else the ref: for messages and the file type


class ImageSource:
    """Reads image refs from disk under `root`, and from Label Studio when `ls_url` and `api_key` are given.

    >>> source = ImageSource(Path("/data/ocr"), ls_url="http://localhost:8080", api_key="...")
    >>> data = source.read("/data/upload/3/5d1e-page.png")
    """

    def __init__(
        self,
        root: Path | None = None,
        ls_url: str | None = None,
        api_key: str | None = None,
        fetch_settings: FetchSettings | None = None,
    ) -> None:
        self.root = Path(root) if root else None
        base = fetch_settings or FetchSettings()
        # Local-files refs missing under our root are asked of Label Studio, which may hold them.
        self._settings = replace(base, ls_url=(ls_url or base.ls_url or "").rstrip("/") or None,
                                 api_key=api_key or base.api_key, document_root=None)
        self._fetcher: ImageFetcher | None = None
        self._lock = threading.Lock()

    @property
    def max_bytes(self) -> int:
        return self._settings.max_bytes

    def read(self, ref: str, task_id: int | None = None) -> SourcedImage:
        """The image bytes behind `ref`; `task_id` lets Label Studio presign cloud storage URIs."""
        path = resolve_local(ref, self.root)
        if path is not None:
            if path.stat().st_size > self.max_bytes:
                raise SourceError(f"image {ref}: {path.stat().st_size} bytes exceeds the {self.max_bytes}-byte limit (SVTR_MAX_IMAGE_BYTES)")
            return SourcedImage(path.read_bytes(), str(path))
        where = f" under {self.root}" if self.root else ""
        if not served_remotely(ref):
            raise SourceError(f"image {ref}: not found{where}; pass the folder it is relative to (--root, Store(root=...)) or copy it here")
        if not (self._settings.ls_url and self._settings.api_key) and not _allowed_without_label_studio(ref, self._settings):
            if ref.startswith(LOCAL_FILES_PATH):
                raise SourceError(
                    f"image {ref}: not found{where}; pass the folder Label Studio serves local files from "
                    f"(--root, LOCAL_FILES_DOCUMENT_ROOT), or {_ASK_LABEL_STUDIO}"
                )
            raise SourceError(f"image {ref} is served by Label Studio: {_ASK_LABEL_STUDIO}")
        try:
            return SourcedImage(self._fetch().fetch(ref, task_id), ref)
        except FetchError as exc:
            raise SourceError(f"image {exc}") from None

    def _fetch(self) -> ImageFetcher:
        with self._lock:
            if self._fetcher is None:
                self._fetcher = ImageFetcher(self._settings)
            return self._fetcher


def _allowed_without_label_studio(ref: str, settings: FetchSettings) -> bool:
    """http(s) refs to hosts named in SVTR_ALLOWED_HOSTS need no Label Studio."""
    return urlsplit(ref).scheme.lower() in ("http", "https") and bool(settings.allowed_hosts)
