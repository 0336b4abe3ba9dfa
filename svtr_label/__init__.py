"""svtr-label: pre-label images with PaddleOCR's SVTRv2 recognizer in Label Studio, review them in
JupyterLab, export PaddleOCR / PaddleX training sets.

The public API, for notebooks and scripts:

    from svtr_label import Services, Store

    services = Services.from_env()                 # settings from the environment, built once
    engine = services.engine("bundled")            # PaddleOCR's pipeline, loaded once per process
    page = engine.predict_one("scan.png")          # a Page of Regions (outline, text, score)
    with Store("review.sqlite") as store:          # the corrections store
        store.add_page(page, image_ref="scan.png")

The layers, each a subpackage that imports only those before it:
`core` (pages, geometry, images) -> `ocr` (profiles, engine, prediction cache) -> `labelstudio`
(its JSON, API client, image fetching, pre-annotation of tasks) -> `store` (the corrections
store) -> `dataset` (validation, export, evaluation) -> `cli`; `settings` and `errors` underlie
them all, and `services` builds the process-wide objects for the faces (the CLI, `svtr_backend`,
`svtr_label_widgets`).
"""

from svtr_label.core.page import Page, Region
from svtr_label.dataset.evaluate import evaluate
from svtr_label.dataset.formats import ExportOptions, ExportResult, run_export
from svtr_label.errors import SvtrLabelError
from svtr_label.ocr.annotate import annotate_files
from svtr_label.ocr.engine import OcrEngine
from svtr_label.services import Services
from svtr_label.settings import Settings
from svtr_label.store import Store

__version__ = "0.1.0"

__all__ = [
    "ExportOptions",
    "ExportResult",
    "OcrEngine",
    "Page",
    "Region",
    "Services",
    "Settings",
    "Store",
    "SvtrLabelError",
    "annotate_files",
    "evaluate",
    "run_export",
]
