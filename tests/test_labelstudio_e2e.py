"""End to end against a real Label Studio 1.23 server on loopback (the session fixture
`label_studio` of conftest_ls.py), with the backend served over HTTP from this process on the
real bundled engine."""

from __future__ import annotations

import copy
import shutil
import threading
import time
from dataclasses import replace

import pytest

from svtr_backend import model as backend
from svtr_backend._wsgi import create_app
from svtr_label.labelstudio.client import LabelStudio
from svtr_label.labelstudio.format import recommended_config
from svtr_label.settings import FetchSettings

from conftest import free_port, wait_until
from conftest_ls import USER

pytestmark = pytest.mark.labelstudio

CONFIG = recommended_config()


@pytest.fixture(scope="module")
def served_backend(label_studio, services, tmp_path_factory):
    """The backend app on a loopback port, configured like a deployment next to this Label Studio."""
    from werkzeug.serving import make_server

    work = tmp_path_factory.mktemp("backend")
    s = services.settings
    docroot = label_studio.document_root
    settings = replace(
        s,
        models=replace(s.models, profile="bundled"),
        label_studio=replace(s.label_studio, url=label_studio.url, api_key=label_studio.personal_token, document_root=docroot),
        fetch=FetchSettings(ls_url=label_studio.url, api_key=label_studio.personal_token, document_root=docroot, cache=work / "images"),
        server=replace(s.server, store=work / "store.sqlite"),
    )
    app = create_app(services.with_settings(backend.serving_settings(settings)), preload_models=False)
    state = app.config["SVTR_STATE"]
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", state.services.store(), state
    server.shutdown()
    state.services.store().close()


@pytest.fixture(scope="module")
def project(label_studio, served_backend, real_images):
    """A project with the recommended config: two uploaded images, one local-files task, the backend connected."""
    ls = label_studio.client()
    pid = ls.request("POST", "/api/projects", json={"title": "svtr e2e", "label_config": CONFIG}).json()["id"]
    for name in ("ch_en_num.jpg", "en.jpg"):
        with open(real_images / name, "rb") as fh:
            ls.request("POST", f"/api/projects/{pid}/import", files={"file": (name, fh)})
    shutil.copy(real_images / "img_exif_orientation.jpg", label_studio.document_root / "exif.jpg")
    ls.request("POST", f"/api/projects/{pid}/import", json=[{"data": {"image": "/data/local-files/?d=exif.jpg"}}])
    ml = ls.request("POST", "/api/ml", json={"url": served_backend[0], "project": pid, "title": "svtr-label", "is_interactive": True}).json()
    return pid, ml


def _tasks_by_file(ls: LabelStudio, pid: int) -> dict[str, dict]:
    out = {}
    for t in ls.tasks(pid):
        ref = t["data"]["image"]
        out[next(n for n in ("ch_en_num", "en.jpg", "exif") if n in ref)] = t
    return out


def _texts(result):
    return [t for r in result if r["type"] == "textarea" for t in r["value"]["text"]]


def _retrieve(ls: LabelStudio, pid: int) -> dict:
    return ls.request("POST", "/api/dm/actions", params={"id": "retrieve_tasks_predictions", "project": pid},
                      json={"selectedItems": {"all": True, "excluded": []}}).json()


def _annotate_first_line(ls: LabelStudio, pid: int, file: str, text: str) -> dict:
    """Submit the task's prediction as an annotation, its first line's text replaced; returns the task."""
    task = _tasks_by_file(ls, pid)[file]
    if not task["predictions"]:
        _retrieve(ls, pid)
        task = _tasks_by_file(ls, pid)[file]
    result = copy.deepcopy(task["predictions"][0]["result"])
    next(r for r in result if r["type"] == "textarea")["value"]["text"] = [text]
    ls.create_annotation(task["id"], result)
    return task


# --- tests -------------------------------------------------------------------------------------


def test_backend_connects_with_the_engine_model_version(project, engine):
    _, ml = project
    assert ml["state"] == "CO", ml.get("error_message")
    assert ml["model_version"] == engine.model_version


def test_retrieved_predictions_have_the_right_texts_and_boxes(label_studio, project, engine):
    from label_studio_sdk.label_interface import LabelInterface

    ls = label_studio.client()
    pid, _ = project
    _retrieve(ls, pid)
    tasks = _tasks_by_file(ls, pid)
    for t in tasks.values():
        assert [p["model_version"] for p in t["predictions"]] == [engine.model_version]
        assert LabelInterface(CONFIG).validate_prediction(t["predictions"][0], return_errors=True) == []
    ch = tasks["ch_en_num"]["predictions"][0]["result"]
    assert _texts(ch)[0] == "正品促销" and 15 <= len(_texts(ch)) <= 19
    assert any("MovieShots Dataset" in t for t in _texts(tasks["en.jpg"]["predictions"][0]["result"]))
    exif = tasks["exif"]["predictions"][0]["result"]
    assert _texts(exif)[0] == "我是中国人"  # read upright although stored upside down
    first = next(r for r in ch if r["type"] == "polygon")
    ys = [p[1] for p in first["value"]["points"]]
    assert max(ys) < 30 and all(0 <= v <= 100 for p in first["value"]["points"] for v in p)
    # Retrieving again is a no-op: Label Studio skips tasks holding this model_version.
    _retrieve(ls, pid)
    assert all(len(t["predictions"]) == 1 for t in _tasks_by_file(ls, pid).values())


def test_interactive_call_through_label_studio(label_studio, project):
    ls = label_studio.client()
    pid, ml = project
    t = _tasks_by_file(ls, pid)["ch_en_num"]
    W, H = 323, 430
    drawn = {"id": "drawn1", "type": "rectangle", "from_name": "bbox", "to_name": "image", "origin": "manual",
             "original_width": W, "original_height": H, "image_rotation": 0,
             "value": {"x": 100 * 10 / W, "y": 100 * 9 / H, "width": 100 * 303 / W, "height": 100 * 86 / H, "rotation": 0}}
    start = time.perf_counter()
    r = ls.request("POST", f"/api/ml/{ml['id']}/interactive-annotating", json={"task": t["id"], "context": {"result": [drawn]}})
    took = time.perf_counter() - start
    data = r.json()["data"]
    assert {x["id"] for x in data["result"]} == {"drawn1"}
    assert _texts(data["result"]) == ["正品促销"]
    print(f"interactive through Label Studio: {took * 1000:.0f} ms")


def test_submitted_correction_arrives_in_the_store_through_the_webhook(label_studio, project, served_backend):
    ls = label_studio.client()
    store = served_backend[1]
    pid, _ = project
    t = _tasks_by_file(ls, pid)["en.jpg"]
    result = copy.deepcopy(t["predictions"][0]["result"] if t["predictions"] else [])
    if not result:
        _retrieve(ls, pid)
        result = copy.deepcopy(_tasks_by_file(ls, pid)["en.jpg"]["predictions"][0]["result"])
    target = next(r for r in result if r["type"] == "textarea")
    target["value"]["text"] = ["corrected by a reviewer"]
    ann = ls.create_annotation(t["id"], result)

    def stored_texts():
        image = store.find_image(ref=t["data"]["image"])
        return image is not None and [r.text for r in store.current_page(image).regions]

    wait_until(lambda: "corrected by a reviewer" in (stored_texts() or []), what="the first correction in the store")
    # An update replaces it; Label Studio sends ANNOTATION_UPDATED.
    target["value"]["text"] = ["corrected twice"]
    ls.request("PATCH", f"/api/annotations/{ann['id']}", json={"result": result})
    wait_until(lambda: "corrected twice" in (stored_texts() or []), what="the updated correction in the store")
    image = store.find_image(ref=t["data"]["image"])
    assert store.reviewers(image) == [USER]  # the annotator by e-mail, not by user id
    # Deleting it in Label Studio takes it out of the store (Label Studio 1.23 sends ANNOTATIONS_DELETED).
    ls.request("DELETE", f"/api/annotations/{ann['id']}/")
    wait_until(lambda: "corrected twice" not in [r.text for r in store.current_page(image).regions], what="the deletion in the store")


def test_personal_access_token_is_renewed(label_studio):
    ls = label_studio.client()
    auth = ls.session.auth
    assert auth.personal
    ls.request("GET", "/api/projects")
    first = auth._access
    auth._access_expiry = 0  # expired: renewed before the next request
    ls.request("GET", "/api/projects")
    assert auth._access != first and auth._access_expiry > time.time()
    auth._access, auth._access_expiry = "not-a-valid-token", time.time() + 3600  # revoked early: 401, renewed, resent
    assert ls.request("GET", "/api/projects").status_code == 200
    assert auth._access != "not-a-valid-token"
    assert label_studio.client(label_studio.legacy_token).request("GET", "/api/projects").status_code == 200


def test_push_prelabels_a_project_resumably(label_studio, engine, tmp_path):
    from svtr_label.cli import main
    from svtr_label.core.synth import write_dataset

    ls = label_studio.client()
    pid = ls.request("POST", "/api/projects", json={"title": "svtr push", "label_config": CONFIG}).json()["id"]
    pages = write_dataset(label_studio.document_root / "push", 22, seed=500, n_lines=3)
    tasks = [{"data": {"image": f"/data/local-files/?d=push/{p.name}"}} for p in pages]
    tasks.append({"data": {"image": "/data/local-files/?d=push/missing.png"}})
    ls.request("POST", f"/api/projects/{pid}/import", json=tasks)
    ids = [t["id"] for t in ls.tasks(pid)]
    assert len(ids) == 23
    env = {"LOCAL_FILES_DOCUMENT_ROOT": str(label_studio.document_root), "SVTR_FETCH_CACHE": "off"}
    common = ["push", "--url", label_studio.url, "--api-key", label_studio.personal_token, "--project", str(pid), "--profile", "bundled", "--no-progress"]
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        # A first, partial run (as if interrupted), then the whole project: the first five are skipped.
        assert main(common + ["--tasks", ",".join(map(str, ids[:5]))]) == 0
        assert main(common + ["--chunk", "5"]) == 1  # the missing file fails; the run goes on
        assert main(common + ["--chunk", "5"]) == 1  # rerun: only the failed task is retried
    by_id = {t["id"]: t for t in ls.tasks(pid)}
    predicted = [by_id[i] for i in ids[:22]]
    assert all([p["model_version"] for p in t["predictions"]] == [engine.model_version] for t in predicted)
    assert by_id[ids[22]]["predictions"] == []
    truth = {p.name: [line.text for line in p.lines] for p in pages}
    found = sum(len(set(_texts(t["predictions"][0]["result"])) & set(truth[t["data"]["image"].rsplit("/", 1)[1]])) for t in predicted)
    assert found >= 0.7 * sum(len(v) for v in truth.values())


def test_pull_brings_annotations_into_a_store(label_studio, project, tmp_path):
    from svtr_label.cli import main
    from svtr_label.store import Store

    pid, _ = project
    ls = label_studio.client()
    _annotate_first_line(ls, pid, "exif", "pulled correction")
    out = tmp_path / "pulled.sqlite"
    assert main(["pull", "--url", label_studio.url, "--api-key", label_studio.legacy_token, "--project", str(pid), "--store", str(out)]) == 0
    with Store(out) as store:
        texts = [r.text for i in store.image_ids() for r in store.current_page(i).regions]
    assert "pulled correction" in texts


def test_basic_auth_backend_with_label_studio(label_studio, served_backend, real_images, monkeypatch):
    """With BASIC_AUTH_USER/PASS set, Label Studio connects with its ML basic-auth settings; its
    auto-created webhook carries no credentials until the Authorization header is added to it."""
    import base64

    url, store, state = served_backend
    s = state.services.settings
    protected = replace(s, server=replace(s.server, basic_auth_user="ls-user", basic_auth_pass="ls-pass-123"))
    monkeypatch.setattr(state, "services", state.services.with_settings(protected))
    ls = label_studio.client()
    pid = ls.request("POST", "/api/projects", json={"title": "svtr basic auth", "label_config": CONFIG}).json()["id"]
    shutil.copy(real_images / "text_rec.jpg", label_studio.document_root / "auth-line.jpg")
    ls.request("POST", f"/api/projects/{pid}/import", json=[{"data": {"image": "/data/local-files/?d=auth-line.jpg"}}])
    ml = ls.request("POST", "/api/ml", json={"url": url, "project": pid, "title": "svtr-auth", "auth_method": "BASIC_AUTH",
                                              "basic_auth_user": "ls-user", "basic_auth_pass": "ls-pass-123"}).json()
    assert ml["state"] == "CO", ml.get("error_message")
    _retrieve(ls, pid)
    task = next(iter(ls.tasks(pid)))
    assert _texts(task["predictions"][0]["result"]) == ["韩国小馆"]

    hook = next(h for h in ls.request("GET", "/api/webhooks/", params={"project": pid}).json() if h["url"].startswith(url))
    header = "Basic " + base64.b64encode(b"ls-user:ls-pass-123").decode()
    ls.request("PATCH", f"/api/webhooks/{hook['id']}/", json={"headers": {"Authorization": header}})
    result = copy.deepcopy(task["predictions"][0]["result"])
    next(r for r in result if r["type"] == "textarea")["value"]["text"] = ["韩国小馆 (checked)"]
    ls.create_annotation(task["id"], result)

    def stored():
        image = store.find_image(ref=task["data"]["image"])
        return image is not None and "韩国小馆 (checked)" in [r.text for r in store.current_page(image).regions]

    wait_until(stored, what="the annotation in the store")


def test_uploaded_image_exports_and_shows_in_the_widgets_through_label_studio(label_studio, project, real_images, tmp_path, capsys, monkeypatch):
    """Images uploaded in Label Studio's UI live only on its server (/data/upload/...): export and
    the review widgets download them with the API key."""
    from svtr_label.cli import main
    from svtr_label.store import Store
    from svtr_label_widgets.data import load_image

    pid, _ = project
    ls = label_studio.client()
    task = _annotate_first_line(ls, pid, "en.jpg", "uploaded and corrected")
    assert task["data"]["image"].startswith("/data/upload/")
    db = tmp_path / "pulled.sqlite"
    assert main(["pull", "--url", label_studio.url, "--api-key", label_studio.personal_token, "--project", str(pid), "--tasks", str(task["id"]), "--store", str(db)]) == 0

    out = tmp_path / "export"
    for var in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    export = ["export", str(db), "--format", "paddleocr", "--out", str(out), "--no-progress", "--on-invalid", "drop"]
    assert main(export) == 2
    assert task["data"]["image"] in capsys.readouterr().err  # names the image and LABEL_STUDIO_URL
    assert main([*export, "--url", label_studio.url, "--api-key", label_studio.personal_token]) == 0
    (image,) = (out / "images").iterdir()
    assert image.suffix == ".jpg" and image.read_bytes() == (real_images / "en.jpg").read_bytes()
    assert "uploaded and corrected" in (out / "Label.txt").read_text(encoding="utf-8")
    assert "uploaded and corrected" in (out / "rec_gt.txt").read_text(encoding="utf-8")

    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.personal_token)
    with Store(db) as store:
        (image_id,) = store.image_ids()
        shown = load_image(store, image_id)
        info = store.get_image(image_id)
    assert (shown.width, shown.height) == (info.width, info.height)
