"""The corrections store: one SQLite file of images, predictions, the edit log and review state."""

from svtr_label.store.sqlite import IMAGE_STATES, SCHEMA_VERSION, Edit, ImageInfo, Store, is_store_file, open_input

__all__ = ["IMAGE_STATES", "SCHEMA_VERSION", "Edit", "ImageInfo", "Store", "is_store_file", "open_input"]
