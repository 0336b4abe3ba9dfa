"""The walkthrough notebooks run top to bottom, headless (nbclient), on generated samples with
no network. Their settings cell reads environment variables, which point them at a temp dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from svtr_label.store import Store

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(name: str, work: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> nbformat.NotebookNode:
    """Execute a notebook in its own folder with SVTR_WORK=work; returns it with outputs."""
    monkeypatch.setenv("SVTR_WORK", str(work))
    monkeypatch.setenv("SVTR_N_SAMPLES", "3")  # three pages are enough to show each step
    monkeypatch.setenv("SVTR_REVIEWER", "nbclient")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def has_widget(nb: nbformat.NotebookNode) -> bool:
    return any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs(nb))


def text_of(nb: nbformat.NotebookNode) -> str:
    parts = []
    for o in outputs(nb):
        parts.append(o.get("text", ""))
        parts.append(json.dumps(o.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_every_notebook_starts_with_one_settings_cell():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert "02_review_and_correct.ipynb" in names
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "Settings" in code[0].source.splitlines()[0], name
        assert all(not c.get("outputs") for c in code), f"{name} is committed with outputs"
        assert any(c.cell_type == "markdown" for c in nb.cells), name


@pytest.mark.pipeline
def test_review_notebook_runs_and_fills_the_store(tmp_path, monkeypatch):
    nb = run_notebook("02_review_and_correct.ipynb", tmp_path, monkeypatch)
    assert has_widget(nb)
    with Store(tmp_path / "review.sqlite") as store:
        assert len(store.image_ids()) == 3
        assert all(store.get_image(i).n_lines > 0 for i in store.image_ids())


def _optional(name: str) -> None:
    if not (NOTEBOOKS / name).is_file():
        pytest.skip(f"{name} not written yet")


@pytest.mark.pipeline
def test_preannotate_notebook_runs(tmp_path, monkeypatch):
    _optional("01_preannotate_and_explore.ipynb")
    nb = run_notebook("01_preannotate_and_explore.ipynb", tmp_path, monkeypatch)
    assert has_widget(nb)
    with Store(tmp_path / "review.sqlite") as store:
        assert len(store.image_ids()) == 3


@pytest.mark.pipeline
def test_export_notebook_runs_and_writes_a_dataset(tmp_path, monkeypatch):
    _optional("03_export_for_retraining.ipynb")
    run_notebook("03_export_for_retraining.ipynb", tmp_path, monkeypatch)
    assert list((tmp_path / "export").rglob("*.txt")), "no label files exported"


@pytest.mark.pipeline
def test_label_studio_notebook_skips_the_server_part_without_a_url(tmp_path, monkeypatch):
    _optional("04_label_studio_roundtrip.ipynb")
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    nb = run_notebook("04_label_studio_roundtrip.ipynb", tmp_path, monkeypatch)
    assert "skipped" in text_of(nb).lower()


@pytest.mark.labelstudio
@pytest.mark.pipeline
def test_label_studio_notebook_pulls_reviews_and_pushes_back(tmp_path, monkeypatch, request, engine, real_images):
    """Notebook 04 against a real Label Studio: pull a task with its prediction, a (scripted)
    correction in the editor, push it back as an annotation."""
    try:
        server = request.getfixturevalue("label_studio")
    except pytest.FixtureLookupError:
        pytest.skip("the label_studio server fixture lives in test_labelstudio_e2e.py; in conftest.py it would run this")
    from svtr_label.labelstudio.format import load_config, make_task, recommended_config

    ls = server.client()
    pid = ls.request("POST", "/api/projects", json={"title": "notebook 04", "label_config": recommended_config()}).json()["id"]
    shutil.copy(real_images / "en.jpg", server.document_root / "nb04.jpg")
    page = engine.predict([real_images / "en.jpg"])[0]
    task = make_task(page, "/data/local-files/?d=nb04.jpg", load_config(None))
    ls.request("POST", f"/api/projects/{pid}/import", json=[task])

    nb = nbformat.read(NOTEBOOKS / "04_label_studio_roundtrip.ipynb", as_version=4)
    push = next(i for i, c in enumerate(nb.cells) if "create_annotation" in c.source)
    # The reviewer's part: accept the first line with a corrected text, as Enter in the editor does.
    nb.cells.insert(push, nbformat.v4.new_code_cell('editor.model.accept("Corrected in notebook 04")'))
    copy = NOTEBOOKS.parent / "test-artifacts" / "04_online.ipynb"
    copy.parent.mkdir(exist_ok=True)
    nbformat.write(nb, copy)
    for key, value in {
        "LABEL_STUDIO_URL": server.url, "LABEL_STUDIO_API_KEY": server.personal_token,
        "LABEL_STUDIO_PROJECT": str(pid), "LOCAL_FILES_DOCUMENT_ROOT": str(server.document_root),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SVTR_WORK", str(tmp_path))
    monkeypatch.setenv("SVTR_REVIEWER", "nbclient")
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    assert "pushed 1 annotations" in text_of(nb)
    [pulled] = list(ls.tasks(pid))
    texts = [t for r in pulled["annotations"][0]["result"] if r["type"] == "textarea" for t in r["value"]["text"]]
    assert "Corrected in notebook 04" in texts and len(texts) == len(page.regions)
