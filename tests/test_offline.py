"""Offline means silent: the bundled profile, through the CLI and through the backend, runs in a
network namespace that has only a loopback interface, under strace, and tries no connection and
no name lookup to anything but loopback (ONNX Runtime 1.32 looks up its telemetry host every few
seconds unless told not to; PaddleX probes model hosts when imported)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.server, pytest.mark.pipeline]

ADDRESS = re.compile(r'(?:inet_addr|inet_pton\(AF_INET6?,)\s*\(?"([^"]+)"')


def _outside_attempts(log: str) -> list[str]:
    """strace lines that connect or send to an address that is not loopback."""
    bad = []
    for line in log.splitlines():
        for address in ADDRESS.findall(line):
            if not (address.startswith("127.") or address in ("::1", "::ffff:127.0.0.1")):
                bad.append(line.strip())
    return bad


@pytest.fixture(scope="module")
def isolated():
    """A command runner in a fresh network namespace (loopback only), traced for connections."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root here (CI runs as root)")
    for tool in ("unshare", "strace", "ip"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not found: `make system-deps` installs it (Debian packages strace, iproute2, util-linux)")

    def run(argv: list[str], env: dict[str, str], log: Path, timeout: float) -> subprocess.CompletedProcess:
        traced = ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(log), *argv]
        script = "ip link set lo up && exec " + shlex.join(traced)
        return subprocess.run(["unshare", "-n", "sh", "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)

    return run


def _env(tmp_path: Path) -> dict[str, str]:
    drop = ("ORT_DISABLE_TELEMETRY", "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK")  # svtr-label must set them itself
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(SVTR_CACHE_DIR=str(tmp_path / "cache"), SVTR_PROFILE="bundled", LOCAL_FILES_DOCUMENT_ROOT=str(REPO))
    return env


def test_cli_predict_on_the_bundled_models_is_silent(isolated, tmp_path):
    log = tmp_path / "strace.log"
    svtr_label = str(Path(sys.executable).parent / "svtr-label")
    out = isolated([svtr_label, "predict", "samples", "--profile", "bundled", "--root", ".", "-o", str(tmp_path / "t.json"),
                    "--no-progress"], _env(tmp_path), log, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "5 images" in out.stdout
    assert _outside_attempts(log.read_text(errors="replace")) == []


DRIVER = textwrap.dedent("""
    import json, subprocess, sys, time, urllib.request
    port = 9300 + int(time.time()) % 500
    server = subprocess.Popen([sys.executable, "svtr_backend/_wsgi.py", "--host", "127.0.0.1", "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if json.load(urllib.request.urlopen(url + "/health", timeout=2)).get("models_loaded"):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        body = json.dumps({"tasks": [{"id": 1, "data": {"image": "/data/local-files/?d=samples/en.jpg"}}]}).encode()
        req = urllib.request.Request(url + "/predict", body, {"Content-Type": "application/json"})
        answer = json.load(urllib.request.urlopen(req, timeout=120))
        print("LINES", len([r for r in answer["results"][0]["result"] if r["type"] == "textarea"]))
        time.sleep(20)  # ONNX Runtime's telemetry looked up its host within 5-40 s of the first session
    finally:
        server.terminate()
        server.wait(30)
""")


def test_backend_on_the_bundled_models_is_silent(isolated, tmp_path):
    log = tmp_path / "strace.log"
    out = isolated([sys.executable, "-c", DRIVER], _env(tmp_path), log, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = re.search(r"LINES (\d+)", out.stdout)
    assert lines and int(lines.group(1)) > 0, out.stdout + out.stderr[-2000:]
    assert _outside_attempts(log.read_text(errors="replace")) == []
