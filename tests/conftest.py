"""Shared fixtures: the real bundled OCR engine (loaded once per test session), generated
pages with known truth, and the real images of ../shared/testdata/real."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import pytest

# Tests never touch the user's cache: one fresh cache folder per test session.
os.environ["SVTR_CACHE_DIR"] = os.environ.get("SVTR_TEST_CACHE_DIR") or tempfile.mkdtemp(prefix="svtr-test-cache-")
os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")

REPO = Path(__file__).resolve().parents[1]
REAL_IMAGES = Path(os.environ.get("SVTR_REAL_TESTDATA", REPO.parent / "shared" / "testdata" / "real"))


def wait_until(check, timeout: float = 30, what: str = "condition"):
    """Poll `check` until it returns something true (that value), or fail the test naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(
    url: str,
    proc: subprocess.Popen,
    what: str,
    log_tail: Callable[[], str] = lambda: "",
    timeout: float = 90,
    ready: Callable[[Any], bool] = lambda resp: True,
) -> None:
    """Poll `url` until it answers 200 and `ready(response)`; fail with the server's log tail if
    the process exits or the time runs out."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log_tail()}")
        try:
            resp = requests.get(url, timeout=2)
            if resp.status_code == 200 and ready(resp):
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"{what} did not answer on {url} within {timeout:.0f} s:\n{log_tail()}")


def jpeg_with_exif(*tags: tuple[int, int, int, bytes]) -> bytes:
    """A 64x32 white JPEG whose EXIF says "rotate 90 degrees" (orientation 6) and holds `tags`
    (tag, type, count, 4-byte value or offset); a NaN double sits at offset 38 for tags pointing there."""
    import io
    import struct

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 32), "white").save(buf, "JPEG")
    jpeg = buf.getvalue()
    entries = ((0x0112, 3, 1, struct.pack("<HH", 6, 0)), *tags)
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHI", *e[:3]) + e[3] for e in entries) + struct.pack("<I", 0)
    app1 = b"Exif\x00\x00" + b"II*\x00\x08\x00\x00\x00" + ifd + struct.pack("<d", float("nan"))
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


# Tags that make Pillow's exif_transpose raise although the pixels are fine.
CORRUPT_EXIF_TAGS = {
    "short-overflow": (0x0128, 4, 1, (70000).to_bytes(4, "little")),  # ResolutionUnit (SHORT) stored as LONG 70000
    "nan-rational": (0x011A, 12, 1, (26 + 12).to_bytes(4, "little")),  # XResolution as a DOUBLE NaN
}


SLOW_MARKERS = ("pipeline", "labelstudio", "browser", "server")
MODEL_FIXTURES = {"engine", "synth_predictions"}  # they load the models and run them


def texts_in_forked_children(engine: Any, image: Path, children: int = 2, timeout: float = 120) -> list[list[str]]:
    """What `engine` reads on `image` in `children` processes forked after it was loaded and used,
    as gunicorn --preload forks its workers. A child that hangs is killed (by its PID) at `timeout`
    and reads as None."""
    import json
    import signal

    readers = []
    for _ in range(children):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: read the page, send its texts, leave without running the parent's cleanup
            try:
                os.close(read_end)
                texts = [r.text for r in engine.predict_one(image).regions]
                os.write(write_end, json.dumps(texts).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        readers.append((pid, read_end))
    deadline = time.monotonic() + timeout
    results = []
    for pid, read_end in readers:
        exited = False
        while not exited and time.monotonic() < deadline:
            exited = os.waitpid(pid, os.WNOHANG) != (0, 0)
            time.sleep(0 if exited else 0.1)
        if not exited:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        with os.fdopen(read_end, "rb") as pipe:  # a page's texts fit in the pipe's buffer
            raw = pipe.read()
        results.append(json.loads(raw) if raw else None)
    return results


def pytest_collection_modifyitems(config, items):
    """The fast tier (`pytest -m "not slow"`) leaves out every test that runs the models, a
    server or a browser: a test using a model fixture is marked pipeline, and every test with
    one of SLOW_MARKERS is marked slow."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.pipeline)
        if any(item.get_closest_marker(name) for name in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def real_images() -> Path:
    if not REAL_IMAGES.is_dir():
        pytest.fail(f"real test images not found at {REAL_IMAGES}: set SVTR_REAL_TESTDATA")
    return REAL_IMAGES


def models_dir() -> Path:
    """Where the tests' bundled model folders are laid out (in the session's cache folder)."""
    from svtr_label.settings import Settings

    return Settings.from_env().models_dir


def profile_from(name: str | None = None, env: dict[str, str] | None = None):
    """The profile `name` with the model variables of `env` applied, as `svtr-label` resolves it."""
    from svtr_label.ocr.profiles import resolve_profile
    from svtr_label.settings import ModelSettings

    return resolve_profile(ModelSettings.from_env({**({"SVTR_PROFILE": name} if name else {}), **(env or {})}), models_dir())


@pytest.fixture(scope="session")
def services():
    """The services of a test session: built from the environment (the session's cache folder)."""
    from svtr_label.services import Services

    return Services.from_env()


@pytest.fixture(scope="session")
def engine(services):
    return services.engine("bundled").load()


def backend_services_for(services, root: Path, store: Path):
    """The services a backend serving `root` is built with: the bundled models, no prediction
    cache (every call runs the engine), no download cache, its own store at `store`."""
    from dataclasses import replace

    from svtr_backend import model as backend_model
    from svtr_label.settings import FetchSettings

    s = services.settings
    settings = replace(
        s,
        models=replace(s.models, profile="bundled"),
        label_studio=replace(s.label_studio, document_root=root),
        fetch=FetchSettings(document_root=root, cache=None),
        preannotate=replace(s.preannotate, prediction_cache=False),
        server=replace(s.server, store=store),
    )
    return services.with_settings(backend_model.serving_settings(settings))


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory):
    """12 generated pages (English and Chinese lines) written as PNG + truth.json."""
    from svtr_label.core.synth import write_dataset

    out = tmp_path_factory.mktemp("synth")
    pages = write_dataset(out, 12, seed=1000)
    return out, pages


@pytest.fixture(scope="session")
def synth_predictions(engine, synth_set):
    """The bundled engine's pages for the generated set, in the same order."""
    folder, pages = synth_set
    return engine.predict([folder / p.name for p in pages])

# The real Label Studio server fixture (label_studio), shared by every test module.
pytest_plugins = ["conftest_ls"]
