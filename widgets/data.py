"""Where the widgets get pixels and sample data: the image behind a store entry, and a small
generated review set for the notebooks and tests (no network, no files to ship)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Iterable

from svtr_label.annotate import annotate_files
from svtr_label.engine import OcrEngine
from svtr_label.images import DecodedImage, find_images, read_image
from svtr_label.store import Store, StoreError, resolve_local


class ImageCache:
    """Decoded images by store id; a few kept so stepping back and forth does not re-decode."""

    def __init__(self, store: Store, size: int = 4) -> None:
        self.store = store
        self.size = size
        self._items: OrderedDict[int, DecodedImage] = OrderedDict()

    def get(self, image_id: int) -> DecodedImage:
        if image_id in self._items:
            self._items.move_to_end(image_id)
            return self._items[image_id]
        image = load_image(self.store, image_id)
        self._items[image_id] = image
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return image


def load_image(store: Store, image_id: int) -> DecodedImage:
    """The image of a store entry, read from its local file (paths and Label Studio local-files refs)."""
    info = store.get_image(image_id)
    path = resolve_local(info.ref, store.root) if info.ref else None
    if path is None:
        raise StoreError(
            f"image {image_id}: its file {info.ref!r} is not on this machine; "
            "pass Store(..., root=LOCAL_FILES_DOCUMENT_ROOT) or copy the images here"
        )
    return read_image(path)


def preannotate_into(store: Store, paths: Iterable[Path], engine: OcrEngine) -> tuple[list[int], list[str]]:
    """Predict images (cache-aware core pipeline) and add each page to the store; returns ids and errors."""
    ids, errors = [], []
    for outcome in annotate_files(list(paths), engine):
        if outcome.page is None:
            errors.append(outcome.error or str(outcome.path))
            continue
        ids.append(store.add_page(outcome.page, image_ref=str(Path(outcome.path).resolve())))
    return ids, errors


def sample_images(folder: str | Path, n_pages: int = 6, seed: int = 0) -> list[Path]:
    """The first `n_pages` images of `folder` (the repo's shipped samples/ by default in the
    notebooks); an empty or missing folder gets generated pages with known text (svtr_label.synth)."""
    from svtr_label.synth import write_dataset

    out = Path(folder)
    existing = find_images([out]) if out.is_dir() else []
    if not existing:
        write_dataset(out, n_pages, seed=seed)
        existing = find_images([out])
    return existing[:n_pages]
