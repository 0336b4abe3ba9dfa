"""Where the widgets get pixels and sample data: the image behind a store entry, and a small
generated review set for the notebooks and tests (no network, no files to ship)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Iterable

from svtr_label.core.images import DecodedImage, decode_image, find_images
from svtr_label.errors import ImageError, StoreError
from svtr_label.labelstudio.sources import ImageSource
from svtr_label.ocr.annotate import annotate_files
from svtr_label.ocr.engine import OcrEngine
from svtr_label.services import Services
from svtr_label.store import Store


def image_source(store: Store) -> ImageSource:
    """Stored refs read under the store's root (else LOCAL_FILES_DOCUMENT_ROOT), and from Label
    Studio when LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are set in the notebook's environment."""
    return Services.from_env().image_source(store.root)


class ImageCache:
    """Decoded images by store id; a few kept so stepping back and forth does not re-decode."""

    def __init__(self, store: Store, size: int = 4, source: ImageSource | None = None) -> None:
        self.store = store
        self.size = size
        self.source = source or image_source(store)
        self._items: OrderedDict[int, DecodedImage] = OrderedDict()

    def get(self, image_id: int) -> DecodedImage:
        if image_id in self._items:
            self._items.move_to_end(image_id)
            return self._items[image_id]
        image = load_image(self.store, image_id, self.source)
        self._items[image_id] = image
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return image


def load_image(store: Store, image_id: int, source: ImageSource | None = None) -> DecodedImage:
    """The image of a store entry: local files (paths, Label Studio local-files refs) under the
    store's root, and what Label Studio serves when LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are set."""
    info = store.get_image(image_id)
    if not info.ref:
        raise StoreError(f"image {image_id} has no file reference; add it with Store.add_page(page, image_ref=...)")
    source = source or image_source(store)
    try:
        found = source.read(info.ref, info.ls_task_id)
        return decode_image(found.data, found.name)
    except ImageError as exc:
        raise StoreError(f"image {image_id}: {exc}") from None


def preannotate_into(store: Store, paths: Iterable[Path], engine: OcrEngine) -> tuple[list[int], list[str]]:
    """Predict images (cache-aware core pipeline) and add each page to the store; returns ids and errors."""
    ids, errors = [], []
    for outcome in annotate_files(list(paths), engine):
        if outcome.page is None:
            errors.append(outcome.error or outcome.name)
            continue
        ids.append(store.add_page(outcome.page, image_ref=str(Path(outcome.name).resolve())))
    return ids, errors


def sample_images(folder: str | Path, n_pages: int = 6, seed: int = 0) -> list[Path]:
    """The first `n_pages` images of `folder` (the repo's shipped samples/ by default in the
    notebooks); an empty or missing folder gets generated pages with known text (svtr_label.core.synth)."""
    from svtr_label.core.synth import write_dataset

    out = Path(folder)
    existing = find_images([out]) if out.is_dir() else []
    if not existing:
        write_dataset(out, n_pages, seed=seed)
        existing = find_images([out])
    return existing[:n_pages]
