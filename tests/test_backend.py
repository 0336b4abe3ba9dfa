"""The ML backend's HTTP API through Flask's test client, on the real bundled engine and the real
images of ../shared/testdata/real: every route, bad input, interactive re-recognition, webhooks."""

from __future__ import annotations

import base64
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from PIL import Image

from svtr_backend import app as backend_app
from svtr_backend.app import create_app
from svtr_label.labelstudio.format import recommended_config
from svtr_label.settings import FetchSettings

from conftest import CORRUPT_EXIF_TAGS, REAL_IMAGES, backend_services_for, free_port, jpeg_with_exif, wait_for_http

pytestmark = pytest.mark.pipeline  # every route runs on the real bundled engine

CONFIG = recommended_config()


@pytest.fixture(scope="module")
def root(tmp_path_factory, real_images):
    """A document root holding the real images, a non-image and a decompression bomb."""
    folder = tmp_path_factory.mktemp("docroot")
    for f in real_images.iterdir():
        if f.suffix in (".jpg", ".png"):
            shutil.copy(f, folder / f.name)
    (folder / "not-an-image.jpg").write_bytes(b"hello, this is text\n" * 50)
    # 9000 x 9000 one-bit pixels: a few KB on disk, 81 megapixels decoded.
    Image.new("1", (9000, 9000), 1).save(folder / "bomb.png", optimize=True)
    (folder / "corrupt-exif.jpg").write_bytes(jpeg_with_exif(CORRUPT_EXIF_TAGS["short-overflow"]))
    return folder


@pytest.fixture()
def backend_services(services, root, tmp_path):
    return backend_services_for(services, root, tmp_path / "store.sqlite")


def make_client(services, **server: object):
    """A test client of the app serving `services`, with these server settings changed."""
    settings = services.settings
    changed = services.with_settings(replace(settings, server=replace(settings.server, **server))) if server else services
    return create_app(changed, preload_models=False).test_client()


def app_state(client) -> backend_app.BackendState:
    return client.application.config["SVTR_STATE"]


@pytest.fixture()
def client(backend_services):
    return make_client(backend_services)


def task(ref, task_id=1, key="image"):
    return {"id": task_id, "data": {key: ref}}


def local(name):
    return f"/data/local-files/?d={name}"


def predict(client, tasks, context=None, label_config=CONFIG):
    body = {"tasks": tasks, "label_config": label_config, "project": "1.1", "params": {"context": context}}
    r = client.post("/predict", json=body)
    assert r.status_code == 200, r.json
    return r.json


def texts(result):
    return [t for r in result if r["type"] == "textarea" for t in r["value"]["text"]]


# --- routes ------------------------------------------------------------------------------------


def test_health_reports_profile_and_loaded_models(client, engine):
    app_state(client).services.engine().load()
    for path in ("/health", "/"):
        body = client.get(path).json
        assert body["status"] == "UP"
        assert body["profile"] == "bundled"
        assert body["models_loaded"] is True
        assert body["model_version"] == engine.model_version


def test_setup_names_the_engine_model_version(client, engine):
    r = client.post("/setup", json={"project": "1.1", "schema": CONFIG, "hostname": "http://x", "access_token": "t"})
    assert r.status_code == 200
    assert r.json["model_version"] == engine.model_version
    assert "PP-OCRv6_small_det" in engine.model_version and "PP-OCRv6_small_rec" in engine.model_version


def test_setup_refuses_a_config_without_per_region_text(client):
    config = '<View><Image name="image" value="$image"/><Rectangle name="r" toName="image"/></View>'
    r = client.post("/setup", json={"project": "1.1", "schema": config})
    assert r.status_code == 400
    assert 'TextArea perRegion="true"' in r.json["error"]


def test_models_that_cannot_load_are_reported_clearly(backend_services):
    s = backend_services.settings
    custom = backend_services.with_settings(replace(s, models=replace(s.models, profile="custom")))  # no model folders
    client = make_client(custom)
    backend_app.preload(app_state(client))
    health = client.get("/health").json
    assert health["status"] == "ERROR" and health["models_loaded"] is False
    assert "SVTR_DET_MODEL_DIR" in health["error"]
    r = client.post("/setup", json={"project": "1.1", "schema": CONFIG})
    assert r.status_code == 503 and "SVTR_DET_MODEL_DIR" in r.json["error"]


def test_side_routes_answer_json(client):
    metrics = client.get("/metrics").json
    assert metrics["peak_rss_kb"] >= metrics["rss_kb"] > 0 and metrics["pixels_decoded_now"] == 0
    r = client.post("/train", json={"annotations": [{"id": 1}], "project": "1.1"})
    assert r.status_code == 410 and "/webhook" in r.json["error"]
    r = client.get("/no-such-route")
    assert r.status_code == 404 and r.is_json


# --- predict -----------------------------------------------------------------------------------


def test_predict_answers_every_task_in_order(client, engine):
    tasks = [
        task(local("ch_en_num.jpg"), 1),
        {"id": 2, "data": {"text": "no image key"}},
        task(local("text_rec.jpg"), 3),
        task(local("empty_black.jpg"), 4),
    ]
    body = predict(client, tasks)
    assert body["model_version"] == engine.model_version
    res = body["results"]
    assert len(res) == 4
    assert texts(res[0]["result"])[0] == "正品促销" and 15 <= len(texts(res[0]["result"])) <= 19
    assert res[0]["model_version"] == engine.model_version and 0 < res[0]["score"] <= 1
    assert res[1]["result"] == [] and res[1]["score"] == 0 and "no 'image' key" in res[1]["error"]
    assert texts(res[2]["result"]) == ["韩国小馆"]
    assert res[3]["result"] == [] and res[3]["score"] == 0 and "error" not in res[3]


def test_many_tasks_keep_their_order_across_batches(client):
    names = ["text_rec.jpg", "nothing.jpg", "short.png", "text_rec.jpg", "not-an-image.jpg", "text_rec.jpg", "empty_black.jpg"]
    res = predict(client, [task(local(n), i) for i, n in enumerate(names)])["results"]
    assert len(res) == len(names)
    assert [texts(res[i]["result"]) for i in (0, 3, 5)] == [["韩国小馆"]] * 3
    assert "no such file" in res[1]["error"] and "not an image" in res[4]["error"]
    assert len(texts(res[2]["result"])) == 1 and res[6]["result"] == []


def test_predicted_boxes_are_where_the_text_is(client):
    res = predict(client, [task(local("ch_en_num.jpg"))])["results"][0]["result"]
    first = next(r for r in res if r["type"] == "polygon")
    assert (first["original_width"], first["original_height"]) == Image.open(REAL_IMAGES / "ch_en_num.jpg").size
    xs, ys = [p[0] for p in first["value"]["points"]], [p[1] for p in first["value"]["points"]]
    assert min(ys) < 10 and max(ys) < 30  # the first line is the banner at the top
    assert max(xs) - min(xs) > 50  # and spans most of the width
    assert all(0 <= v <= 100 for p in first["value"]["points"] for v in p)


def test_predictions_validate_against_the_labeling_config(client):
    from label_studio_sdk.label_interface import LabelInterface

    res = predict(client, [task(local("en.jpg"))])["results"][0]
    assert any("MovieShots Dataset" in t for t in texts(res["result"]))
    errors = LabelInterface(CONFIG).validate_prediction({"result": res["result"], "score": res["score"]}, return_errors=True)
    assert errors == []


@pytest.mark.parametrize(
    "ref, reason",
    [
        (local("nothing-here.jpg"), "no such file"),
        (local("not-an-image.jpg"), "not an image"),
        (local("bomb.png"), "pixel limit"),
        (local("../../etc/passwd"), "escapes LOCAL_FILES_DOCUMENT_ROOT"),
        ("http://images.example.com/a.jpg", "neither the Label Studio host nor in SVTR_ALLOWED_HOSTS"),
        ("ftp://example.com/a.jpg", "unsupported URL scheme"),
        ("file:///etc/passwd", "file:// URLs are refused"),
        ("/data/upload/1/a.jpg", "set LABEL_STUDIO_URL"),
        (12, "not a URL"),
    ],
)
def test_bad_image_fails_its_task_only(client, ref, reason):
    res = predict(client, [task(local("text_rec.jpg"), 1), task(ref, 2), task(local("text_rec.jpg"), 3)])["results"]
    assert [texts(r["result"]) for r in res] == [["韩国小馆"], [], ["韩国小馆"]]
    assert res[1]["score"] == 0 and reason in res[1]["error"]


def test_tasks_that_once_failed_the_whole_batch_fail_alone(client):
    """A JPEG with a slightly corrupt EXIF block, a port out of range, a broken IPv6 literal and a
    cloud URI with a task id that is not one: each its own answer, the good task still read."""
    tasks = [
        task(local("corrupt-exif.jpg"), 1),
        task("http://localhost:99999/x.png", 2),
        task("http://[::1/x.png", 3),
        {"id": "abc", "data": {"image": "s3://bucket/x.png"}},
        task(local("text_rec.jpg"), 5),
    ]
    res = predict(client, tasks)["results"]
    assert len(res) == 5
    assert "error" not in res[0]  # decoded upright: a white page, no lines
    assert all("not a valid URL" in r["error"] for r in res[1:3])
    assert res[3]["result"] == [] and "error" in res[3]
    assert texts(res[4]["result"]) == ["韩国小馆"]


def test_task_data_key_follows_the_labeling_config(client):
    config = CONFIG.replace('value="$image"', 'value="$photo"')
    res = predict(client, [task(local("text_rec.jpg"), key="photo")], label_config=config)["results"]
    assert texts(res[0]["result"]) == ["韩国小馆"]


@pytest.mark.parametrize(
    "body, status, message",
    [
        (b"{not json", 400, "must be a JSON object"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"tasks": "x"}', 400, "'tasks' must be a list"),
        (b'{"label_config": "<View>", "tasks": []}', 400, "not valid XML"),
    ],
)
def test_malformed_requests_get_json_errors(client, body, status, message):
    r = client.post("/predict", data=body, content_type="application/json")
    assert r.status_code == status
    assert message in r.json["error"]


def test_request_size_limit(backend_services):
    client = make_client(backend_services, max_request_bytes=1000)
    r = client.post("/predict", json={"tasks": [task("x" * 2000)]})
    assert r.status_code == 413 and "byte limit" in r.json["error"]


def test_basic_auth(backend_services):
    client = make_client(backend_services, basic_auth_user="ls", basic_auth_pass="s3cret")
    assert client.get("/health").status_code == 401
    wrong = base64.b64encode(b"ls:nope").decode()
    assert client.get("/health", headers={"Authorization": f"Basic {wrong}"}).status_code == 401
    right = base64.b64encode(b"ls:s3cret").decode()
    assert client.get("/health", headers={"Authorization": f"Basic {right}"}).status_code == 200
    r = client.post("/predict", json={"tasks": []})
    assert r.status_code == 401 and "basic auth" in r.json["error"]


def test_credentials_never_reach_the_logs(backend_services, caplog):
    import logging

    client = make_client(backend_services, basic_auth_user="ls", basic_auth_pass="pass-word-1")
    caplog.set_level(logging.DEBUG)
    auth = {"Authorization": "Basic " + base64.b64encode(b"ls:pass-word-1").decode()}
    r = client.post("/setup", json={"project": "1.1", "schema": CONFIG, "access_token": "ls-token-abcdef"}, headers=auth)
    assert r.status_code == 200
    assert "ls-token-abcdef" not in caplog.text
    assert auth["Authorization"].split()[1] not in caplog.text and "pass-word-1" not in caplog.text


# --- interactive -------------------------------------------------------------------------------


def rect(rid, x, y, w, h, size, rotation=0.0, from_name="bbox", kind="rectangle"):
    W, H = size
    return {
        "id": rid, "from_name": from_name, "to_name": "image", "type": kind, "origin": "manual",
        "original_width": W, "original_height": H, "image_rotation": 0,
        "value": {"x": 100 * x / W, "y": 100 * y / H, "width": 100 * w / W, "height": 100 * h / H, "rotation": rotation},
    }


def test_interactive_rectangle_reads_only_the_drawn_box(client):
    size = Image.open((REAL_IMAGES / "text_rec.jpg")).size
    drawn = rect("u1", 0, 0, size[0], size[1], size)
    res = predict(client, [task(local("text_rec.jpg"))], context={"result": [drawn]})["results"]
    assert len(res) == 1
    out = res[0]["result"]
    assert {r["id"] for r in out} == {"u1"}
    shape = next(r for r in out if r["type"] == "rectangle")
    assert shape["value"] == drawn["value"]  # the box the user drew does not move
    ta = next(r for r in out if r["type"] == "textarea")
    assert ta["from_name"] == "transcription" and ta["value"]["text"] == ["韩国小馆"]
    assert {k: ta["value"][k] for k in ("x", "y", "width", "height")} == {k: drawn["value"][k] for k in ("x", "y", "width", "height")}


def test_interactive_rotated_rectangle(client, root):
    """A line rotated 12 degrees clockwise, boxed by a rectangle rotated the same way."""
    src = Image.open(root / "text_rec.jpg").convert("RGB")
    w, h = src.size
    turned = src.rotate(-12, expand=True, fillcolor="white", resample=Image.BICUBIC)
    turned.save(root / "turned.png")
    a = math.radians(12)
    cx, cy, ncx, ncy = w / 2, h / 2, turned.width / 2, turned.height / 2
    x0 = (0 - cx) * math.cos(a) - (0 - cy) * math.sin(a) + ncx  # where the top-left corner went
    y0 = (0 - cx) * math.sin(a) + (0 - cy) * math.cos(a) + ncy
    drawn = rect("r1", x0, y0, w, h, turned.size, rotation=12)
    out = predict(client, [task(local("turned.png"))], context={"result": [drawn]})["results"][0]["result"]
    assert texts(out) == ["韩国小馆"]
    assert next(r for r in out if r["type"] == "rectangle")["value"]["rotation"] == 12


def test_interactive_polygons_keep_their_labels(client, engine):
    page = engine.predict([(REAL_IMAGES / "ch_en_num.jpg")])[0]
    W, H = page.width, page.height
    regions = page.regions[:2]
    drawn = []
    for i, region in enumerate(regions):
        pts = [[100 * x / W, 100 * y / H] for x, y in region.points]
        base = {"id": f"p{i}", "to_name": "image", "original_width": W, "original_height": H, "image_rotation": 0}
        drawn.append({**base, "from_name": "poly", "type": "polygon", "value": {"points": pts}})
        drawn.append({**base, "from_name": "label", "type": "labels", "value": {"points": pts, "labels": ["Handwriting"]}})
    out = predict(client, [task(local("ch_en_num.jpg"))], context={"result": drawn})["results"][0]["result"]
    by_id = {rid: [r for r in out if r["id"] == rid] for rid in ("p0", "p1")}
    for i, rid in enumerate(("p0", "p1")):
        kinds = {r["type"]: r for r in by_id[rid]}
        assert set(kinds) == {"polygon", "labels", "textarea"}
        assert kinds["labels"]["value"]["labels"] == ["Handwriting"]
        assert kinds["textarea"]["value"]["text"] == [regions[i].text]
    assert regions[0].text == "正品促销"


def test_interactive_one_line_is_read_on_every_call(client):
    size = Image.open((REAL_IMAGES / "ch_en_num.jpg")).size
    drawn = rect("t1", 10, 9, 303, 86, size)
    body = {"tasks": [task(local("ch_en_num.jpg"))], "label_config": CONFIG, "params": {"context": {"result": [drawn]}}}
    client.post("/predict", json=body)  # warm-up
    took = []
    for _ in range(3):
        start = time.perf_counter()
        r = client.post("/predict", json=body)
        took.append(time.perf_counter() - start)
        assert texts(r.json["results"][0]["result"]) == ["正品促销"]
    # Timing goals live in benchmarks/bench.py (interactive_line_s); this only reports it.
    print(f"interactive one line: median {sorted(took)[1] * 1000:.0f} ms")


def test_interactive_context_without_shapes_is_an_empty_answer(client):
    kp = {"id": "k", "type": "keypointlabels", "from_name": "kp", "to_name": "image", "value": {"x": 1, "y": 1}}
    res = predict(client, [task(local("text_rec.jpg"))], context={"result": [kp]})["results"]
    assert res[0]["result"] == [] and "no rectangle or polygon" in res[0]["error"]


@pytest.mark.parametrize("value", [
    {"points": "1,2 3,4 5,6"},
    {"points": [["a", "b"], [1, 2], [3, 4]]},
    {"x": "1", "y": 2, "width": 3, "height": 4},
    {"x": 1, "y": 2, "width": 3, "height": 4, "rotation": [0]},
])
def test_drawn_shapes_that_are_not_numbers_get_an_answer_not_a_500(client, value):
    drawn = {"id": "d", "type": "polygon", "from_name": "poly", "to_name": "image", "original_width": 100,
             "original_height": 50, "value": value}
    res = predict(client, [task(local("text_rec.jpg"))], context={"result": [drawn]})["results"]
    assert res[0]["result"] == [] and "no rectangle or polygon" in res[0]["error"]


# --- webhook -----------------------------------------------------------------------------------


@pytest.fixture()
def store(backend_services):
    """The store the backend's webhooks write to."""
    s = backend_services.store()
    yield s
    s.close()


def annotation_event(action, ann_id, text, updated_at):
    size = Image.open((REAL_IMAGES / "text_rec.jpg")).size
    shape = rect("a1", 2, 2, size[0] - 4, size[1] - 4, size)
    textarea = {**shape, "from_name": "transcription", "type": "textarea", "value": {**shape["value"], "text": [text]}}
    return {
        "action": action,
        "project": {"id": 1, "label_config": CONFIG},
        "task": {"id": 9, "data": {"image": local("text_rec.jpg")}},
        "annotation": {"id": ann_id, "task": 9, "result": [shape, textarea], "created_at": "2026-01-01T00:00:00Z", "updated_at": updated_at, "completed_by": 1},
    }


def test_webhook_stores_corrections_idempotently(client, store):
    created = annotation_event("ANNOTATION_CREATED", 31, "韩国小馆!", "2026-01-01T00:00:00Z")
    r = client.post("/webhook", json=created)
    assert r.status_code == 201 and r.json["status"] == "stored"
    assert client.post("/webhook", json=created).json["status"] == "unchanged"  # a repeat
    image_id = store.image_ids()[0]
    assert [x.text for x in store.current_page(image_id).regions] == ["韩国小馆!"]

    updated = annotation_event("ANNOTATION_UPDATED", 31, "韩国小馆", "2026-01-02T00:00:00Z")
    assert client.post("/webhook", json=updated).json["status"] == "stored"
    assert client.post("/webhook", json=created | {"action": "ANNOTATION_UPDATED"}).json["status"] == "unchanged"  # stale
    assert [x.text for x in store.current_page(image_id).regions] == ["韩国小馆"]

    deleted = annotation_event("ANNOTATION_DELETED", 31, "", "2026-01-03T00:00:00Z")
    assert client.post("/webhook", json=deleted).json["status"] == "stored"


@pytest.mark.parametrize("ref", ["/etc/hosts", "file:///etc/hosts", "/data/local-files/?d=../../etc/hosts"])
def test_webhook_refs_that_would_make_exports_read_local_files_are_refused(client, store, ref):
    event = annotation_event("ANNOTATION_CREATED", 41, "x", "2026-01-01T00:00:00Z")
    event["task"]["data"]["image"] = ref
    r = client.post("/webhook", json=event)
    assert r.status_code == 422 and ref in r.json["error"] and "refused" in r.json["error"]
    assert store.image_ids() == []


def test_webhook_ignores_other_events_and_needs_an_action(client, store):
    r = client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 1}})
    assert r.status_code == 200 and r.json["status"] == "ignored"
    r = client.post("/webhook", json={"project": {"id": 1}})
    assert r.status_code == 400 and "'action'" in r.json["error"]


def test_a_timestamp_that_is_not_one_is_refused_and_freezes_nothing(client, store):
    planted = annotation_event("ANNOTATION_CREATED", 71, "planted", "zzzz")
    r = client.post("/webhook", json=planted)
    assert r.status_code == 422 and "'zzzz' is not an ISO 8601 timestamp" in r.json["error"]
    real = annotation_event("ANNOTATION_UPDATED", 71, "the reviewer's text", "2026-03-01T10:00:00Z")
    assert client.post("/webhook", json=real).json["status"] == "stored"
    (image_id,) = store.image_ids()
    assert [x.text for x in store.current_page(image_id).regions] == ["the reviewer's text"]


def test_webhooks_never_read_more_than_the_image_size_limit(backend_services, root):
    s = backend_services.settings
    limited = backend_services.with_settings(replace(s, images=replace(s.images, max_bytes=1000)))
    client = make_client(limited)
    event = annotation_event("ANNOTATION_CREATED", 81, "x", "2026-01-01T00:00:00Z")
    r = client.post("/webhook", json=event)  # text_rec.jpg is larger than 1000 bytes
    assert r.status_code == 422 and "over the 1000-byte limit (SVTR_MAX_IMAGE_BYTES)" in r.json["error"]
    assert limited.store().image_ids() == []


def test_bulk_deletions_reach_the_store(client, store):
    """Label Studio 1.23 sends ANNOTATIONS_DELETED (plural) for API and Data Manager deletions."""
    assert client.post("/webhook", json=annotation_event("ANNOTATION_CREATED", 51, "to be deleted", "2026-01-01T00:00:00Z")).status_code == 201
    (image_id,) = store.image_ids()
    assert "to be deleted" in [r.text for r in store.current_page(image_id).regions]
    r = client.post("/webhook", json={"action": "ANNOTATIONS_DELETED", "project": {"id": 1}, "annotations": [{"id": 51}]})
    assert r.status_code == 201 and r.json["status"] == "stored"
    assert "to be deleted" not in [r.text for r in store.current_page(image_id).regions]


@pytest.mark.parametrize("change, message", [
    (lambda e: e.update(task="not a task"), "task must be a JSON object"),
    (lambda e: e.update(annotation=[1, 2]), "annotation must be a JSON object"),
    (lambda e: e["annotation"].update(id="abc"), "annotation.id must be a whole number"),
    (lambda e: e["annotation"].update(id=2**70), "annotation.id must be a whole number"),
    (lambda e: e["task"].update(id=True), "task.id must be a whole number"),
    (lambda e: e["annotation"].update(result="points"), "annotation.result must be a list"),
    (lambda e: e.update(annotations={"id": 1}), "annotations must be a list"),
])
def test_webhooks_of_the_wrong_shape_get_400_naming_the_field(client, store, change, message):
    event = annotation_event("ANNOTATION_CREATED", 61, "x", "2026-01-01T00:00:00Z")
    change(event)
    r = client.post("/webhook", json=event)
    assert r.status_code == 400 and message in r.json["error"], r.json
    assert store.image_ids() == []


def test_json_that_python_cannot_take_gets_400(client):
    deep = "[" * 100_000 + "]" * 100_000
    r = client.post("/predict", data='{"tasks": ' + deep + "}", content_type="application/json")
    assert r.status_code == 400 and "nested too deeply" in r.json["error"]
    r = client.post("/predict", data='{"tasks": [], "x": NaN}', content_type="application/json")
    assert r.status_code == 400 and "NaN" in r.json["error"]


def test_too_many_tasks_in_one_request_get_413(backend_services):
    client = make_client(backend_services, max_tasks_per_request=3)
    r = client.post("/predict", json={"tasks": [task(local("text_rec.jpg"), i) for i in range(4)]})
    assert r.status_code == 413 and "SVTR_MAX_TASKS_PER_REQUEST" in r.json["error"] and "svtr-label push" in r.json["error"]


# --- serving: the three ways to start it, and a load run ---------------------------------------

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def serving(cmd, root, wait_loaded=False, timeout=180, env=None):
    """Run a server command in its own process group on a free port; yield its URL."""
    port = free_port()
    env = {
        **os.environ, "SVTR_PROFILE": "bundled", "LOCAL_FILES_DOCUMENT_ROOT": str(root),
        "SVTR_PREDICTION_CACHE": "off", "SVTR_FETCH_CACHE": "off",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **(env or {}),
    }
    # The server's log goes to a file (a pipe nobody reads could fill and stall it); shown when a test fails.
    log = tempfile.NamedTemporaryFile(prefix="svtr-server-", suffix=".log", delete=False)
    proc = subprocess.Popen([c.format(port=port) for c in cmd], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"

    def log_tail() -> str:
        return Path(log.name).read_text(errors="replace")[-4000:]

    try:
        wait_for_http(url + "/health", proc, "the backend", log_tail, timeout=timeout,
                      ready=lambda r: r.json().get("models_loaded") or not wait_loaded)
        yield url
    except BaseException:
        print(f"--- server log ({log.name}), last lines:\n{log_tail()}")
        raise
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            pass
        try:  # a worker stuck in native code outlives its master's SIGTERM: none is left behind
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        log.close()
        Path(log.name).unlink(missing_ok=True)


@pytest.mark.parametrize(
    "cmd",
    [
        ["{python}", "svtr_backend/_wsgi.py", "--host", "127.0.0.1", "--port", "{port}"],
        ["{label_studio_ml}", "start", "svtr_backend", "--host", "127.0.0.1", "--port", "{port}"],
    ],
    ids=["python-_wsgi.py", "label-studio-ml-start"],
)
@pytest.mark.server
def test_starts_the_documented_ways(root, cmd):
    bin_dir = Path(sys.executable).parent
    cmd = [c.replace("{python}", sys.executable).replace("{label_studio_ml}", str(bin_dir / "label-studio-ml")) for c in cmd]
    with serving(cmd, root) as url:
        body = requests.get(url + "/health", timeout=5).json()
        assert body["status"] == "UP" and body["profile"] == "bundled"


@pytest.mark.parametrize("cmd", [
    [sys.executable, "svtr_backend/_wsgi.py", "--host", "127.0.0.1", "--port", "{port}"],
    [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", "127.0.0.1:{port}", "svtr_backend._wsgi:app"],
], ids=["werkzeug", "gunicorn"])
@pytest.mark.server
def test_the_body_limit_holds_for_chunked_bodies_on_real_servers(root, cmd):
    limit = 100_000
    with serving(cmd, root, env={"SVTR_MAX_REQUEST_BYTES": str(limit), "SVTR_PRELOAD": "0"}) as url:
        body = b'{"tasks": [], "padding": "' + b"x" * (3 * limit) + b'"}'

        def chunked():
            for start in range(0, len(body), 8192):
                yield body[start:start + 8192]

        r = requests.post(url + "/predict", data=chunked(), headers={"Content-Type": "application/json"}, timeout=30)
        assert r.request.headers.get("Transfer-Encoding") == "chunked"
        assert r.status_code == 413 and f"{limit}-byte limit" in r.json()["error"]
        r = requests.post(url + "/predict", data=body, headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 413
        small = requests.post(url + "/predict", data=iter([b'{"tasks": ', b"[]}"]), headers={"Content-Type": "application/json"}, timeout=30)
        assert small.status_code == 200 and small.json()["results"] == []


@pytest.fixture(scope="module")
def huge_pages(tmp_path_factory):
    """Eight copies of a 16 KB 1-bit PNG of 7700x7700 px: 59 MP each, within the pixel limit."""
    folder = tmp_path_factory.mktemp("huge")
    Image.new("1", (7700, 7700), 1).save(folder / "big0.png", optimize=True)
    for i in range(1, 8):
        shutil.copy(folder / "big0.png", folder / f"big{i}.png")
    return folder


def test_decoded_pixels_held_at_once_stay_within_the_budget(backend_services, huge_pages):
    s = backend_services.settings
    services = backend_services.with_settings(replace(
        s, label_studio=replace(s.label_studio, document_root=huge_pages),
        fetch=FetchSettings(document_root=huge_pages, cache=None)))
    client = make_client(services)
    res = predict(client, [task(local(f"big{i}.png"), i) for i in range(8)])["results"]
    assert len(res) == 8 and all("error" not in r for r in res)
    budget = services.pixel_budget()
    assert budget.peak <= budget.max_pixels == 120_000_000 and budget.held == 0


@pytest.mark.server
def test_eight_huge_pages_in_one_request_cost_no_more_memory_than_two(huge_pages):
    """A request of 8 pages of 59 MP each made the server peak at 3.9 GB, holding them all decoded. Now at
    most two are decoded at once (SVTR_MAX_INFLIGHT_PIXELS) and large pages hand their memory back, so
    eight pages in one request peak where two do. The bound is relative: the peak for two pages differs
    between machines (ONNX Runtime's threads, malloc arenas: 1.9 GB here, 2.6 GB on a CI machine), and
    the eight pages peak 4-8 % above the two here, and 47 % above without the budget, 39 % without
    handing memory back."""
    cmd = [sys.executable, "svtr_backend/_wsgi.py", "--host", "127.0.0.1", "--port", "{port}"]
    peaks = []
    with serving(cmd, huge_pages, wait_loaded=True) as url:
        for pages in (2, 8):
            tasks = [task(local(f"big{i}.png"), i) for i in range(pages)]
            r = requests.post(url + "/predict", json={"tasks": tasks}, timeout=600)
            assert r.status_code == 200 and all("error" not in x for x in r.json()["results"])
            peaks.append(int(requests.get(url + "/metrics", timeout=5).json().get("peak_rss_kb", 0)))
    two, eight = peaks
    print(f"peak RSS: 2 pages {two / 1e6:.2f} GB, then 8 pages {eight / 1e6:.2f} GB")
    assert 0 < two <= eight < 1.25 * two, f"peak RSS {two / 1e6:.2f} GB after 2 pages, {eight / 1e6:.2f} GB after 8"
    assert eight < 3_500_000, f"peak RSS {eight / 1e6:.2f} GB"


def load_run(url: str, clients: int = 8, calls: int = 25) -> tuple[list, list[float], float]:
    """`clients` threads x `calls` /predict requests of two small real images: (errors, sorted seconds per call, wall seconds)."""
    names = ["text_rec.jpg", "short.png"]
    errors: list = []
    took: list[float] = []

    def client(n):
        s = requests.Session()
        for i in range(calls):
            name = names[(n + i) % 2]
            t0 = time.perf_counter()
            try:
                r = s.post(url + "/predict", json={"tasks": [task(local(name), i)], "label_config": CONFIG}, timeout=120)
                res = r.json()["results"]
                if r.status_code != 200 or len(res) != 1 or not res[0]["result"] or "error" in res[0]:
                    errors.append((name, r.status_code, r.text[:200]))
                elif name == "text_rec.jpg" and texts(res[0]["result"]) != ["韩国小馆"]:
                    errors.append((name, texts(res[0]["result"])))
            except Exception as exc:  # counted, not raised: the run reports every failure
                errors.append((name, repr(exc)))
            took.append(time.perf_counter() - t0)

    wall = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors, sorted(took), time.perf_counter() - wall


def worker_metrics(url: str, workers: int, timeout: float = 180) -> dict[int, dict]:
    """/metrics of each of `workers` gunicorn workers (by pid), once every one has loaded its models."""
    seen: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = requests.get(url + "/metrics", timeout=5).json()
        if m["models_loaded"]:
            seen[m["pid"]] = m
        if len(seen) == workers:
            return seen
        time.sleep(0.2)
    pytest.fail(f"only {len(seen)} of {workers} workers answered with their models loaded")


@pytest.mark.server
def test_two_gunicorn_workers_each_load_once_serve_a_load_run_and_share_one_store(root, tmp_path):
    """2 workers x 4 threads: each worker loads the engine once (after its fork), 8 clients x 25
    calls get zero errors, and webhooks spread over both workers land in the one store exactly once."""
    store_path = tmp_path / "store.sqlite"
    cmd = [sys.executable, "-m", "gunicorn", "--workers", "2", "--threads", "4", "--bind", "127.0.0.1:{port}", "svtr_backend._wsgi:app"]
    env = {"SVTR_STORE": str(store_path), "SVTR_CACHE_DIR": str(tmp_path / "cache")}  # no prediction cache: every call runs a model
    with serving(cmd, root, env=env) as url:
        before = worker_metrics(url, 2)
        errors, took, wall = load_run(url)
        assert errors == [] and len(took) == 200
        after = worker_metrics(url, 2)
        assert set(after) == set(before)  # the same two workers: none crashed or was replaced
        print(f"2 workers: 200 calls in {wall:.1f} s, median {took[100] * 1000:.0f} ms; RSS per worker "
              + ", ".join(f"{m['rss_kb'] / 1e6:.2f} GB (peak {m['peak_rss_kb'] / 1e6:.2f})" for m in after.values()))

        # 20 versions of one annotation, each sent twice, 8 at a time: both workers write the store.
        events = [annotation_event("ANNOTATION_UPDATED", 501, f"version {k}", f"2026-01-01T00:00:{k:02d}Z") for k in range(20)]
        answers: list = []

        def send(batch):
            for event in batch:
                r = requests.post(url + "/webhook", json=event, timeout=60)
                answers.append(r.status_code if r.status_code == 201 else (r.status_code, r.text[:300]))

        batches = [events[k::8] + events[k::8] for k in range(8)]
        threads = [threading.Thread(target=send, args=(b,)) for b in batches]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [a for a in answers if a != 201] == [] and len(answers) == 40
    from svtr_label.store import Store

    with Store(store_path) as store:
        (image_id,) = store.image_ids()
        assert [r.text for r in store.current_page(image_id).regions] == ["version 19"]  # the latest wins, whatever the order
        applied = [e for e in store.history(image_id) if e.op == "replace"]
        assert len(applied) <= 20  # no version applied twice


@pytest.mark.server
def test_load_run_gunicorn_threads_8_clients_x_25(root):
    """8 concurrent clients x 25 /predict calls on one gunicorn worker with threads: zero errors."""
    cmd = [sys.executable, "-m", "gunicorn", "--workers", "1", "--threads", "8", "--bind", "127.0.0.1:{port}", "svtr_backend._wsgi:app"]
    with serving(cmd, root, wait_loaded=True) as url:
        page = {"tasks": [task(local("ch_en_num.jpg"))], "label_config": CONFIG}
        page_ms = []
        for _ in range(4):  # the first call warms ONNX Runtime up
            start = time.perf_counter()
            assert texts(requests.post(url + "/predict", json=page, timeout=60).json()["results"][0]["result"])[0] == "正品促销"
            page_ms.append((time.perf_counter() - start) * 1000)
        print(f"/predict one 323x430 page (17 lines) over HTTP: first {page_ms[0]:.0f} ms, then {sorted(page_ms[1:])[1]:.0f} ms median")

        errors, took, wall = load_run(url)
        print(f"load run: 200 calls in {wall:.1f} s, median {took[100] * 1000:.0f} ms, p95 {took[189] * 1000:.0f} ms")
        assert errors == [] and len(took) == 200
        assert requests.get(url + "/health", timeout=5).json()["status"] == "UP"
