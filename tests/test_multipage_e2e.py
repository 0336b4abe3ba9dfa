"""A 3-page PDF as one multi-page task in a real Label Studio 1.23 (the session fixture
`label_studio`), with the backend of test_labelstudio_e2e.py (`served_backend`, on the real bundled
engine): imported with its predictions, pre-annotated by the backend, a drawn box re-read on its
page, and an annotation reaching the store page by page through the webhook."""

from __future__ import annotations

import copy
import json

import pytest

from svtr_label.labelstudio.format import recommended_config

from conftest import wait_until
from test_documents import PAGES, assert_reads, page_texts, write_text_pdf
from test_labelstudio_e2e import _retrieve, served_backend  # noqa: F401  (served_backend: a fixture, reused)

pytestmark = pytest.mark.labelstudio

MULTIPAGE = recommended_config(multipage=True)


@pytest.fixture(scope="module")
def document_task(label_studio, engine, tmp_path_factory):
    """`svtr-label predict report.pdf --document-tasks per-document`, its pages written under Label
    Studio's document root: the one task it writes."""
    from svtr_label.cli import main

    pdf = write_text_pdf(tmp_path_factory.mktemp("pdf") / "report.pdf")
    out = label_studio.document_root / "multipage" / "tasks.json"
    assert main(["predict", str(pdf), "--profile", "bundled", "--root", str(label_studio.document_root), "-o", str(out),
                 "--document-tasks", "per-document", "--no-progress"]) == 0
    (task,) = json.loads(out.read_text(encoding="utf-8"))
    return task


def _project(ls, title: str) -> int:
    return ls.request("POST", "/api/projects", json={"title": title, "label_config": MULTIPAGE}).json()["id"]


def _assert_every_page_predicted(result: list) -> None:
    assert {r.get("item_index") for r in result} == {0, 1, 2}
    for i, lines in enumerate(PAGES):
        assert_reads(page_texts(result, i), lines)


def test_a_pdf_imports_as_one_task_with_predictions_on_all_three_pages(label_studio, document_task, engine):
    from label_studio_sdk.label_interface import LabelInterface

    ls = label_studio.client()
    pid = _project(ls, "svtr multipage import")
    ls.request("POST", f"/api/projects/{pid}/import", json=[document_task])
    (task,) = ls.tasks(pid)
    assert task["data"]["pages"] == document_task["data"]["pages"] and len(task["data"]["pages"]) == 3
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == engine.model_version
    assert LabelInterface(MULTIPAGE).validate_prediction(prediction, return_errors=True) == []
    _assert_every_page_predicted(prediction["result"])


def test_the_backend_preannotates_rereads_and_stores_a_document_task(label_studio, served_backend, document_task, engine):  # noqa: F811
    url, store, _ = served_backend
    ls = label_studio.client()
    pid = _project(ls, "svtr multipage backend")
    ls.request("POST", f"/api/projects/{pid}/import", json=[{"data": document_task["data"]}])
    ml = ls.request("POST", "/api/ml", json={"url": url, "project": pid, "title": "svtr-label", "is_interactive": True}).json()
    assert ml["state"] == "CO", ml.get("error_message")
    _retrieve(ls, pid)
    (task,) = ls.tasks(pid)
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == engine.model_version
    _assert_every_page_predicted(prediction["result"])

    # Interactive: the box drawn around page 3's first line is read on page 3.
    line = next(r for r in prediction["result"] if r["item_index"] == 2 and r["type"] == "polygon")
    xs, ys = [p[0] for p in line["value"]["points"]], [p[1] for p in line["value"]["points"]]
    drawn = {"id": "drawn3", "type": "rectangle", "from_name": "bbox", "to_name": "image", "origin": "manual", "item_index": 2,
             "original_width": line["original_width"], "original_height": line["original_height"], "image_rotation": 0,
             "value": {"x": min(xs) - 0.5, "y": min(ys) - 0.3, "width": max(xs) - min(xs) + 1, "height": max(ys) - min(ys) + 0.6, "rotation": 0}}
    answer = ls.request("POST", f"/api/ml/{ml['id']}/interactive-annotating", json={"task": task["id"], "context": {"result": [drawn]}}).json()["data"]
    assert {r["item_index"] for r in answer["result"]} == {2}
    assert "Customer" in page_texts(answer["result"], 2)

    # An annotation (page 2's first line corrected) reaches the store as three page images.
    result = copy.deepcopy(prediction["result"])
    first = next(r for r in result if r["type"] == "textarea" and r["item_index"] == 1)
    first["value"]["text"] = ["corrected on page two"]
    ls.create_annotation(task["id"], result)
    refs = task["data"]["pages"]

    def stored():
        ids = [store.find_image(ref=r) for r in refs]
        return None not in ids and ids

    ids = wait_until(stored, what="the three pages in the store")
    wait_until(lambda: "corrected on page two" in [r.text for r in store.current_page(ids[1]).regions], what="the correction on page 2")
    assert "corrected on page two" not in [r.text for i in (ids[0], ids[2]) for r in store.current_page(i).regions]
    assert {store.get_image(i).ls_task_id for i in ids} == {task["id"]}
