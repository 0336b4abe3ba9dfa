"""Serve the svtr-label ML backend.

    label-studio-ml start svtr_backend --port 9090
    python svtr_backend/_wsgi.py --host 0.0.0.0 --port 9090
    gunicorn --workers 1 --threads 8 --bind 0.0.0.0:9090 'svtr_backend._wsgi:app'

The Flask app is label-studio-ml's own; `create_app` replaces the views whose 1.0.9 behaviour
Label Studio users trip over (a model per /setup only, 'INITIAL' as model_version, training
jobs forked per webhook, HTML tracebacks) and adds /health details, basic auth, a request size
limit and JSON errors.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import logging
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

if __package__ in (None, ""):  # run as a script (label-studio-ml start): make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask, Response, current_app, jsonify, request  # noqa: E402
from label_studio_ml.api import init_app  # noqa: E402
from werkzeug.exceptions import HTTPException  # noqa: E402

from svtr_backend.model import SvtrBackend, serving_settings  # noqa: E402
from svtr_label.errors import RequestError, StoreError, SvtrLabelError, http_status_for  # noqa: E402
from svtr_label.labelstudio.payloads import WebhookEvent  # noqa: E402
from svtr_label.services import Services  # noqa: E402
from svtr_label.settings import Settings  # noqa: E402

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
    return current_app.config["SVTR_STATE"]


def json_error(status: int, message: str) -> Response:
    resp = jsonify({"status": status, "error": message})
    resp.status_code = status
    return resp


def _body() -> dict[str, Any]:
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise RequestError("the request body must be a JSON object (Content-Type: application/json)")
    return data


# --- views -----------------------------------------------------------------------------------


def predict() -> Response:
    """POST /predict {tasks, label_config?, params: {context?}} -> {results: [one per task], model_version}."""
    body = _body()
    tasks = body.get("tasks")
    if not isinstance(tasks, list):
        raise RequestError("'tasks' must be a list of Label Studio tasks")
    params = body.get("params") or {}
    model = state().model(body.get("label_config"))
    started = time.perf_counter()
    results = model.predict(tasks, context=params.get("context") if isinstance(params, dict) else None)
    log.info("predicted %d task(s) in %.2f s", len(tasks), time.perf_counter() - started)
    return jsonify({"results": results, "model_version": model.model_version})


def setup() -> Response:
    """POST /setup {schema, project, ...}: checks the labeling config and names the model version."""
    body = _body()
    schema = body.get("schema") or body.get("label_config")
    model = state().model(schema)  # a config without image + text area fails here, clearly
    state().label_config = schema or state().label_config
    return jsonify({"model_version": model.model_version})


def webhook() -> Response:
    """POST /webhook: Label Studio's annotation events into the corrections store."""
    body = _body()
    event = body.pop("action", None)
    if not event:
        raise RequestError("a webhook body needs an 'action' (e.g. ANNOTATION_CREATED)")
    project = body.get("project")
    model = state().model(project.get("label_config") if isinstance(project, dict) else None)
    try:
        result = model.fit(event, cast(WebhookEvent, body))
    except StoreError as exc:
        return json_error(422, f"{event} not stored: {exc}")
    return jsonify(result), 201 if result.get("status") != "ignored" else 200


def train() -> Response:
    """POST /train: Label Studio < 1.4 only. 1.0.9 would fork a training job writing into the package folder."""
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


# --- hooks -----------------------------------------------------------------------------------


def _check_basic_auth() -> Response | None:
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


def _too_large(limit: int | None) -> Response:
    return json_error(413, f"the request body exceeds the {limit}-byte limit (SVTR_MAX_REQUEST_BYTES)")


def _check_size() -> Response | None:
    """Refuse an oversized body before reading it (Flask 1.1 only enforces the limit on forms)."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit and (request.content_length or 0) > limit:
        return _too_large(limit)
    return None


def _http_error(exc: HTTPException) -> Response:
    if exc.code == 413:
        return _too_large(current_app.config.get("MAX_CONTENT_LENGTH"))
    return json_error(exc.code or 500, exc.description or exc.name)


def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
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


def create_app(services: Services | None = None, preload_models: bool | None = None) -> Flask:
    """label-studio-ml's app with svtr-label's views, auth, limits and JSON errors, serving `services`
    (default: built from the environment, with the backend's engine defaults).

    label-studio-ml keeps one Flask app per process: a second call gives it the services passed
    (tests build their own) and returns it."""
    services = services or Services(serving_settings(Settings.from_env()))
    settings = services.settings
    app = init_app(
        model_class=SvtrBackend,
        # Job folders of label-studio-ml (/versions): in the cache, never inside the installed package.
        model_dir=str(settings.ml_backend_dir),
        redis_queue=settings.server.rq_queue,
        redis_host=settings.server.redis_host,
        redis_port=settings.server.redis_port,
    )
    backend = BackendState(services)
    app.config["SVTR_STATE"] = backend
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_request_bytes
    if not app.config.get("SVTR_BACKEND"):
        app.config["SVTR_BACKEND"] = True
        app.config["JSON_AS_ASCII"] = False
        for endpoint, view in (("_predict", predict), ("_setup", setup), ("webhook", webhook), ("health", health), ("_train", train)):
            app.view_functions[endpoint] = view
        # 1.0.9 logs every request's headers and body at DEBUG: Authorization, and /setup's access_token.
        before = [f for f in app.before_request_funcs.get(None, []) if f.__name__ != "log_request_info"]
        app.before_request_funcs[None] = [_check_basic_auth, _check_size, *before]
        app.after_request_funcs[None] = [f for f in app.after_request_funcs.get(None, []) if f.__name__ != "log_response_info"]
        # 1.0.9 registers string-returning handlers for a few exception classes: JSON for all.
        for cls in (HTTPException, FileNotFoundError, AssertionError, IndexError, Exception):
            app.register_error_handler(cls, _unexpected)
    if settings.server.preload if preload_models is None else preload_models:
        threading.Thread(target=preload, args=(backend,), name="svtr-preload", daemon=True).start()
    return app


def main(argv: list[str] | None = None) -> None:
    settings = Settings.from_env()
    server = settings.server
    parser = argparse.ArgumentParser(description="svtr-label ML backend for Label Studio")
    parser.add_argument("-p", "--port", type=int, default=server.port, help="port (env PORT; default 9090)")
    parser.add_argument("--host", default=server.host, help="address to listen on (env HOST; default 0.0.0.0)")
    parser.add_argument("--log-level", default=server.log_level.upper(), choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("-d", "--debug", action="store_true", help="Flask debug mode (never in production)")
    parser.add_argument("--model-dir", type=Path, help="label-studio-ml's model dir (env MODEL_DIR)")
    args, _unknown = parser.parse_known_args(argv)  # label-studio-ml start passes its own options too
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT)
    if args.model_dir:
        settings = replace(settings, server=replace(server, model_dir=args.model_dir))
    app = create_app(Services(serving_settings(settings)))
    app.run(host=args.host, port=args.port, debug=args.debug, threaded=True, use_reloader=False)


LOG_FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s"

app: Flask  # built by __getattr__ on first use


def __getattr__(name: str) -> Any:
    """`svtr_backend._wsgi:app` for gunicorn: built from the environment when first asked for,
    not when the module is imported (tests import it and build their own)."""
    if name != "app":
        raise AttributeError(name)
    global app
    settings = Settings.from_env()
    logging.basicConfig(level=settings.server.log_level.upper(), format=LOG_FORMAT)
    app = create_app(Services(serving_settings(settings)))
    return app


if __name__ == "__main__":
    main()
