"""The `label_studio` session fixture: a real Label Studio 1.23 server on a free loopback port, in
a temporary folder, from its own virtual environment (env SVTR_LABEL_STUDIO_BIN, default
`label-studio` on PATH). Started once per test session, stopped at its end. Registered as a
plugin by conftest.py so every test module can use it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from svtr_label.labelstudio.client import LabelStudio

from conftest import free_port, wait_for_http

USER, PASSWORD = "svtr@example.com", "svtr-test-pass"
LEGACY_TOKEN = "5c0ffee0123456789abcdef0123456789abcdef0"


@dataclass
class LabelStudioServer:
    url: str
    personal_token: str
    legacy_token: str
    document_root: Path

    def client(self, token: str | None = None) -> LabelStudio:
        return LabelStudio(self.url, token or self.personal_token)


def _personal_token(url: str) -> str:
    """Log in like a browser, allow legacy tokens (off by default in 1.23) and create a personal access token."""
    s = requests.Session()
    s.get(url + "/user/login/", timeout=30)
    r = s.post(url + "/user/login/", data={"email": USER, "password": PASSWORD, "csrfmiddlewaretoken": s.cookies["csrftoken"]},
               headers={"Referer": url + "/user/login/"}, allow_redirects=False, timeout=30)
    assert r.status_code == 302, f"login failed: {r.status_code}"
    headers = {"X-CSRFToken": s.cookies["csrftoken"], "Referer": url + "/"}
    s.post(url + "/api/jwt/settings", json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": True}, headers=headers, timeout=30).raise_for_status()
    r = s.post(url + "/api/token/", headers=headers, timeout=30)
    r.raise_for_status()
    return r.json()["token"]


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory) -> LabelStudioServer:
    exe = os.environ.get("SVTR_LABEL_STUDIO_BIN") or shutil.which("label-studio")
    if not exe:
        pytest.fail("Label Studio not found: set SVTR_LABEL_STUDIO_BIN to the label-studio of its own virtual environment")
    base = tmp_path_factory.mktemp("label-studio")
    docroot = base / "files"
    docroot.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY")}
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(base / "data"),
        LOCAL_FILES_SERVING_ENABLED="true",
        LOCAL_FILES_DOCUMENT_ROOT=str(docroot),
        # Label Studio refuses loopback ML backends and image URLs unless told otherwise.
        USE_DEFAULT_BANNED_SUBNETS="false",
        SSRF_PROTECTION_ENABLED="false",
        ML_BLOCK_LOCAL_IP="false",
        # Nothing calls out: no version check against the package index, no analytics, no remote error reporting.
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
    )
    log = base / "label-studio.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [exe, "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port),
             "--username", USER, "--password", PASSWORD, "--user-token", LEGACY_TOKEN],
            cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/health", proc, "Label Studio", lambda: log.read_text(errors="replace")[-3000:], timeout=300)
        yield LabelStudioServer(url, _personal_token(url), LEGACY_TOKEN, docroot)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its workers
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
