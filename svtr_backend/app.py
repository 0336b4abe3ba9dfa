"""The backend's HTTP app: the ML-backend protocol Label Studio speaks, served by svtr-label's own
Flask app so that it behaves the same under label-studio-ml 2.x and 1.0.9.

The two label-studio-ml versions build different apps (different `init_app` arguments, routes that
exist in one only, string error pages, request logging that writes credentials at DEBUG); the
backend uses neither app, only the model class convention. Routes: /health (and /), /setup,
/predict, /webhook, /metrics; /train answers 410.

Every request body is read through one limit (SVTR_MAX_REQUEST_BYTES), whatever its transfer
encoding; JSON that is not plain JSON (NaN, Infinity, nesting deeper than Python can parse) is a
400; svtr-label's errors map to statuses through errors.HTTP_STATUS; anything else is a 500 whose
traceback goes to the log.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import resource
import threading
import time
from typing import Any, cast

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from svtr_backend.model import SvtrBackend
from svtr_label.errors import RequestError, StoreError, SvtrLabelError, http_status_for
from svtr_label.labelstudio.payloads import WebhookEvent, parse_webhook
from svtr_label.services import Services

log = logging.getLogger("svtr_backend")


class BackendState:
    """What the app keeps between requests: its services, the project's labeling config (from
    /setup), and why the models could not be loaded, if they could not."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.label_config: str | None = None
        self.load_error: str | None = None

    def model(self, label_config: str | None = None) -> SvtrBackend:
        return SvtrBackend(services=self.services, label_config=label_config or self.label_config)


def state() -> BackendState:
    return cast(BackendState, current_app.config["SVTR_STATE"])


def json_error(status: int, message: str) -> Response:
    resp = jsonify({"status": status, "error": message})
    resp.status_code = status
    return resp


# --- request bodies --------------------------------------------------------------------------


class BodyTooLarge(Exception):
    """A body over SVTR_MAX_REQUEST_BYTES (answered 413)."""


def _reject_constant(name: str) -> Any:
    raise RequestError(f"the request body holds {name}, which is not JSON (send numbers or null)")


def read_body() -> dict[str, Any]:
    """The JSON object of the request, read through the size limit. The stream is read, never
    trusted for its Content-Length: a chunked body is cut off at the limit like any other."""
    limit = int(current_app.config["SVTR_MAX_REQUEST_BYTES"])
    if (request.content_length or 0) > limit:
        raise BodyTooLarge()
    raw = request.stream.read(limit)
    # One byte more tells a body over the limit (Werkzeug >= 3 raises its own 413 on that read).
    if len(raw) == limit and request.stream.read(1):
        raise BodyTooLarge()
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        data = None
    except RecursionError:
        raise RequestError("the request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise RequestError("the request body must be a JSON object (Content-Type: application/json)")
    return data


# --- views -----------------------------------------------------------------------------------


def predict() -> Response:
    """POST /predict {tasks, label_config?, params: {context?}} -> {results: [one per task], model_version}."""
    body = read_body()
    tasks = body.get("tasks")
    if not isinstance(tasks, list):
        raise RequestError("'tasks' must be a list of Label Studio tasks")
    cap = state().services.settings.server.max_tasks_per_request
    if len(tasks) > cap:
        return json_error(413, f"{len(tasks)} tasks in one request; at most {cap} (SVTR_MAX_TASKS_PER_REQUEST): "
                               "pre-label large projects with `svtr-label push`")
    params = body.get("params") or {}
    model = state().model(body.get("label_config"))
    started = time.perf_counter()
    results = model.predict(tasks, context=params.get("context") if isinstance(params, dict) else None)
    log.info("predicted %d task(s) in %.2f s", len(tasks), time.perf_counter() - started)
    return jsonify({"results": results, "model_version": model.model_version})


def setup() -> Response:
    """POST /setup {schema, project, ...}: checks the labeling config and names the model version."""
    body = read_body()
    schema = body.get("schema") or body.get("label_config")
    model = state().model(schema)  # a config without image + text area fails here, clearly
    state().label_config = schema or state().label_config
    return jsonify({"model_version": model.model_version})


def webhook() -> tuple[Response, int]:
    """POST /webhook: Label Studio's annotation events into the corrections store."""
    event: WebhookEvent = parse_webhook(read_body())
    project = event.get("project")
    model = state().model(project.get("label_config") if isinstance(project, dict) else None)
    try:
        result = model.fit(event["action"], event)
    except StoreError as exc:
        return json_error(422, f"{event['action']} not stored: {exc}"), 422
    return jsonify(result), 201 if result.get("status") != "ignored" else 200


def train() -> Response:
    """POST /train: Label Studio < 1.4 only; annotation events come to /webhook."""
    return json_error(410, "/train is gone since Label Studio 1.4: annotation events arrive at /webhook")


def health() -> Response:
    """GET /health: up, which profile, and whether the models are loaded (LS calls it often: no loading here)."""
    services = state().services
    info: dict[str, Any] = {"status": "UP", "model_class": SvtrBackend.__name__, "profile": services.settings.models.profile}
    if state().load_error:
        info.update(status="ERROR", models_loaded=False, error=state().load_error)
        return jsonify(info)
    engine = services.built_engine()
    info["models_loaded"] = bool(engine is not None and engine.loaded)
    if engine is not None:
        info.update(profile=engine.profile.name, model_version=engine.model_version)
    return jsonify(info)


def metrics() -> Response:
    """GET /metrics: this process's memory (now and its peak) and the decoded pixels it holds."""
    engine = state().services.built_engine()
    return jsonify({
        "pid": os.getpid(),
        "models_loaded": bool(engine is not None and engine.loaded),
        "rss_kb": _rss_kb(),
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,  # KiB on Linux
        "pixels_decoded_now": state().services.pixel_budget().held,
    })


def _rss_kb() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:  # not Linux: the peak is what there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# --- hooks -----------------------------------------------------------------------------------


def check_basic_auth() -> Response | None:
    server = state().services.settings.server
    user, password = server.basic_auth_user, server.basic_auth_pass
    if not user or not password:
        return None
    header = request.headers.get("Authorization", "")
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if hmac.compare_digest(header.encode(), expected.encode()):
        return None
    resp = json_error(401, "authentication required: Label Studio's ML backend settings need the basic auth user and password")
    resp.headers["WWW-Authenticate"] = 'Basic realm="svtr-label"'
    return resp


def on_error(exc: Exception) -> Response:
    if isinstance(exc, BodyTooLarge) or (isinstance(exc, HTTPException) and exc.code == 413):
        limit = current_app.config["SVTR_MAX_REQUEST_BYTES"]
        return json_error(413, f"the request body exceeds the {limit}-byte limit (SVTR_MAX_REQUEST_BYTES)")
    if isinstance(exc, HTTPException):
        return json_error(exc.code or 500, exc.description or exc.name)
    if isinstance(exc, SvtrLabelError):
        return json_error(http_status_for(exc), str(exc))
    log.exception("unexpected error on %s", request.path)
    return json_error(500, f"{type(exc).__name__}: {exc}")


def preload(backend: BackendState) -> None:
    """Load the models in the background at start: the first request must not pay for it."""
    try:
        log.info("models loaded: %s", backend.services.engine().load().model_version)
    except Exception as exc:  # reported by /health and by every request that needs the engine
        backend.load_error = f"{type(exc).__name__}: {exc}"
        log.error("could not load the OCR models: %s", backend.load_error)


ROUTES = (
    ("/", "index", health, ["GET"]),
    ("/health", "health", health, ["GET"]),
    ("/setup", "setup", setup, ["POST"]),
    ("/predict", "predict", predict, ["POST"]),
    ("/webhook", "webhook", webhook, ["POST"]),
    ("/metrics", "metrics", metrics, ["GET"]),
    ("/train", "train", train, ["POST"]),
)


def create_app(services: Services, preload_models: bool | None = None) -> Flask:
    """The backend's Flask app serving `services`; loads the models in the background unless
    told not to (default: SVTR_PRELOAD)."""
    settings = services.settings
    app = Flask("svtr_backend")
    backend = BackendState(services)
    app.config["SVTR_STATE"] = backend
    app.config["SVTR_MAX_REQUEST_BYTES"] = settings.server.max_request_bytes
    # Flask refuses larger bodies itself too (forms; and streams from Werkzeug 2.3 on).
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_request_bytes
    app.config["JSON_AS_ASCII"] = False  # Flask < 2.3
    if hasattr(app, "json") and hasattr(app.json, "ensure_ascii"):  # Flask >= 2.2
        app.json.ensure_ascii = False
    for rule, endpoint, view, methods in ROUTES:
        app.add_url_rule(rule, endpoint, view, methods=methods)
    app.before_request(check_basic_auth)
    app.register_error_handler(Exception, on_error)
    if settings.server.preload if preload_models is None else preload_models:
        start_preload(app)
    return app


def start_preload(app: Flask) -> None:
    """Load `app`'s models in a background thread of this process."""
    threading.Thread(target=preload, args=(app.config["SVTR_STATE"],), name="svtr-preload", daemon=True).start()
