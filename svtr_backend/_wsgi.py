"""Start the svtr-label ML backend.

    python svtr_backend/_wsgi.py --host 127.0.0.1 --port 9090          # development server
    label-studio-ml start svtr_backend --port 9090                      # the same, through label-studio-ml
    gunicorn --preload --workers 2 --threads 4 --bind 0.0.0.0:9090 'svtr_backend._wsgi:app'

The app itself is `svtr_backend.app.create_app`; this module only reads the settings and serves it.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script (label-studio-ml start): make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask  # noqa: E402

from svtr_backend.app import create_app, start_preload  # noqa: E402
from svtr_backend.model import serving_settings  # noqa: E402
from svtr_label.errors import UsageError  # noqa: E402
from svtr_label.services import Services  # noqa: E402
from svtr_label.settings import Settings  # noqa: E402

log = logging.getLogger("svtr_backend")
LOG_FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s] %(message)s"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, host: str, debug: bool = False) -> None:
    """The debugger runs code for whoever reaches it: loopback only. Any other address without
    basic auth lets anyone who reaches the port predict and write corrections: say so."""
    if debug and not is_loopback(host):
        raise UsageError(f"--debug opens Werkzeug's debugger, which runs code for whoever reaches it: "
                         f"bind it to 127.0.0.1, not {host}")
    server = settings.server
    if not is_loopback(host) and not (server.basic_auth_user and server.basic_auth_pass):
        log.warning("listening on %s without basic auth: anyone who reaches this port can run predictions and write "
                    "corrections; set BASIC_AUTH_USER and BASIC_AUTH_PASS (and the same in Label Studio's model settings)", host)


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    server = settings.server
    parser = argparse.ArgumentParser(description="svtr-label ML backend for Label Studio")
    parser.add_argument("-p", "--port", type=int, default=server.port, help="port (env PORT; default 9090)")
    parser.add_argument("--host", default=server.host, help="address to listen on (env HOST; default 0.0.0.0)")
    parser.add_argument("--log-level", default=server.log_level.upper(), choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("-d", "--debug", action="store_true", help="Flask debug mode: loopback only, never in production")
    parser.add_argument("--basic-auth-user", help="require this basic-auth user (env BASIC_AUTH_USER)")
    parser.add_argument("--basic-auth-pass", help="and this password (env BASIC_AUTH_PASS)")
    parser.add_argument("--model-dir", type=Path, help="label-studio-ml's folder (env MODEL_DIR)")
    args, _unknown = parser.parse_known_args(argv)  # label-studio-ml start passes its own options too
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT)
    changes: dict[str, Any] = {k: v for k, v in (("basic_auth_user", args.basic_auth_user), ("basic_auth_pass", args.basic_auth_pass),
                                                 ("model_dir", args.model_dir)) if v}
    settings = replace(settings, server=replace(server, **changes))
    try:
        check_exposure(settings, args.host, args.debug)
    except UsageError as exc:
        print(f"svtr_backend: error: {exc}", file=sys.stderr)
        return 2
    app = create_app(Services(serving_settings(settings)))
    app.run(host=args.host, port=args.port, debug=args.debug, threaded=True, use_reloader=False)
    return 0


def built_in_gunicorn_master() -> bool:
    """True while gunicorn's master builds the app (--preload), before it forks the workers. A
    worker building it (no --preload) has the master's frames below its own, since it was forked
    from them: there the worker's frames decide."""
    modules = set()
    frame = sys._getframe()
    while frame is not None:
        modules.add(str(frame.f_globals.get("__name__", "")))
        frame = frame.f_back  # type: ignore[assignment]
    in_worker = any(m.startswith("gunicorn.workers") for m in modules)
    return "gunicorn.arbiter" in modules and not in_worker


app: Flask  # built by __getattr__ on first use


def __getattr__(name: str) -> Any:
    """`svtr_backend._wsgi:app` for gunicorn: built from the environment when first asked for (with
    --preload, once, before the workers fork), not when the module is imported.

    The models always load after the fork, in each worker: a Paddle Inference predictor loaded
    before a fork hangs in the children (tests/test_paddle_engine.py; ONNX Runtime survives it), so
    --preload shares the imported code, not the models."""
    if name != "app":
        raise AttributeError(name)
    global app
    settings = serving_settings(Settings.from_env())
    logging.basicConfig(level=settings.server.log_level.upper(), format=LOG_FORMAT)
    app = create_app(Services(settings), preload_models=False)
    if settings.server.preload:
        if built_in_gunicorn_master():
            os.register_at_fork(after_in_child=lambda: start_preload(app))
        else:
            start_preload(app)
    return app


if __name__ == "__main__":
    sys.exit(main())
