"""The corrections store: one SQLite file of images, predictions, the edit log and review state.

schema: the SQL schema and its migrations; editlog: the edit log's rules as pure functions;
rows: store rows to values; versions: region versions, the store's revision and per-reviewer redo
(several reviewers on one file); sqlite: the SQLite store core; sync: `Store`, the core plus
Label Studio import, webhooks, export.
"""

from svtr_label.store.editlog import (
    IMAGE_STATES,
    Edit,
    EditOp,
    RegionState,
    ReviewState,
)
from svtr_label.store.schema import SCHEMA_VERSION, is_store_file
from svtr_label.store.sqlite import ImageInfo
from svtr_label.store.sync import Store, open_input

__all__ = [
    "IMAGE_STATES", "SCHEMA_VERSION", "Edit", "EditOp", "ImageInfo", "RegionState", "ReviewState", "Store", "is_store_file", "open_input",
]
