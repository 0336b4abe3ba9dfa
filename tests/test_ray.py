"""Scale-out on a real Ray cluster: two nodes on 127.0.0.2 and 127.0.0.3 started (and stopped, by
PID) by these tests, a real S3-compatible server, the real `svtr-label` command as drivers.

Ray 2.60 binds its servers to every interface, so these tests run inside a network namespace
whose only interface is loopback: `make test-ray` (as root: `unshare -n`). Elsewhere they skip,
unless SVTR_REQUIRE_RAY_TESTS is set (CI), where that is a failure.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import wait_until
from conftest_ray import in_loopback_only_namespace, interface_addresses, ray_cluster, s3_server

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
COPIES = 3  # of the 12 generated pages: 36 inputs, enough for a job to be killed in the middle


@pytest.fixture(scope="module", autouse=True)
def loopback_only():
    if not in_loopback_only_namespace():
        message = ("the Ray tests run in a network namespace with loopback only (Ray 2.60 listens on every interface): "
                   f"`make test-ray`; this process sees {interface_addresses()}")
        if os.environ.get("SVTR_REQUIRE_RAY_TESTS"):
            pytest.fail(message)
        pytest.skip(message)


def copies_of(synth_set, base: Path, copies: int) -> Path:
    """A document root with pages/ holding `copies` copies of each generated page under other names."""
    folder, pages = synth_set
    (base / "pages").mkdir(parents=True)
    for copy in range(copies):
        for page in pages:
            shutil.copy(folder / page.name, base / "pages" / f"c{copy}-{page.name}")
    return base


@pytest.fixture(scope="module")
def root(synth_set, tmp_path_factory) -> Path:
    return copies_of(synth_set, tmp_path_factory.mktemp("ray-root"), COPIES)


@pytest.fixture(scope="module")
def s3(root, tmp_path_factory):
    with s3_server() as url:
        env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        import boto3

        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket="scans")
        for path in sorted((root / "pages").iterdir())[:12]:
            client.upload_file(str(path), "scans", f"batch1/{path.name}")
        from test_documents import write_text_pdf

        client.put_object(Bucket="scans", Key="docs/report.pdf", Body=write_text_pdf(tmp_path_factory.mktemp("s3-docs") / "report.pdf").read_bytes())
        client.put_object(Bucket="scans", Key="docs/broken.pdf", Body=b"%PDF-1.7 this is not a PDF")
        yield env


@pytest.fixture(scope="module")
def cluster(s3):
    # No prediction cache: the copies of a page would be cache hits, and every input must be predicted.
    with ray_cluster(("127.0.0.2", "127.0.0.3"), cpus=1, env={**s3, "SVTR_PREDICTION_CACHE": "off"}) as c:
        yield c


def cli(env: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "svtr_label.cli", *args]
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def start_cli(env: dict, *args: str, log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "svtr_label.cli", *args], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def predict_args(root: Path, out: Path, address: str, *more: str) -> list[str]:
    return ["predict", str(root / "pages"), "--profile", "bundled", "--root", str(root), "--ray", address, "-o", str(out),
            "--no-progress", "--block-size", "2", *more]


def rows(out: Path) -> list[dict]:
    from svtr_label.scale.output import JobOutput

    fmt = "jsonl" if any(p.suffix == ".jsonl" for p in (out / "rows").iterdir()) else "parquet"
    return [{"uri": r.uri, "sha256": r.sha256, "error": r.error, "node": r.node, "texts": [x.text for x in r.page.regions] if r.page else None}
            for r in JobOutput(out, fmt).rows()]


def task_files(out: Path) -> list[dict]:
    return [t for f in sorted((out / "tasks").glob("tasks-*.json")) for t in json.loads(f.read_text(encoding="utf-8"))]


def by_image(tasks: list[dict]) -> dict[str, dict]:
    images = [t["data"]["image"] for t in tasks]
    assert len(images) == len(set(images)), "a task appears twice"
    return {t["data"]["image"]: t for t in tasks}


@pytest.fixture(scope="module")
def single_machine(root, tmp_path_factory) -> dict[str, dict]:
    """The single-machine path's tasks for the same inputs (the reference)."""
    out = tmp_path_factory.mktemp("single") / "tasks.json"
    r = cli({**os.environ, "SVTR_PREDICTION_CACHE": "off"}, "predict", str(root / "pages"), "--profile", "bundled",
            "--root", str(root), "-o", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    return by_image(json.loads(out.read_text(encoding="utf-8")))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def on_loopback(address: str) -> bool:
    """127.0.0.0/8 (also as an IPv4-mapped IPv6 address) or ::1; the wildcard of a listening socket
    counts as loopback here, where loopback is the only interface."""
    if address in ("*", "0.0.0.0", "::"):
        return True
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


class Connections:
    """Every TCP address seen in use (ss) while a job runs, sampled in a thread; bounded in time."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        deadline = time.monotonic() + 900
        while not self._stop.is_set() and time.monotonic() < deadline:
            out = subprocess.run(["ss", "-tanH"], capture_output=True, text=True, timeout=10).stdout
            for line in out.splitlines():
                fields = line.split()
                self.seen.update(a.rsplit(":", 1)[0].strip("[]") for a in fields[3:5])
            self._stop.wait(0.5)

    def __enter__(self) -> "Connections":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(15)


def test_two_nodes_give_the_single_machine_results_use_both_nodes_and_only_loopback(cluster, root, single_machine, tmp_path):
    out = tmp_path / "out"
    with Connections() as seen:
        r = cli(cluster.env, *predict_args(root, out, cluster.address))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    got = rows(out)
    assert len(got) == 12 * COPIES and len({g["uri"] for g in got}) == len(got)
    assert all(g["error"] is None for g in got)
    assert Counter(g["node"] for g in got).keys() == {"127.0.0.2", "127.0.0.3"}, Counter(g["node"] for g in got)
    assert by_image(task_files(out)) == single_machine
    outside = {a for a in seen.seen if not on_loopback(a)}
    assert len(seen.seen) > 3 and not outside, f"addresses outside 127.0.0.0/8: {outside}"

    again = cli(cluster.env, *predict_args(root, out, cluster.address))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{12 * COPIES} inputs: {12 * COPIES} already done" in again.stdout and " 0 written" in again.stdout
    assert len(rows(out)) == 12 * COPIES and by_image(task_files(out)) == single_machine


def test_s3_inputs_read_from_an_s3_server_on_loopback(cluster, root, single_machine, tmp_path):
    out = tmp_path / "out"
    r = cli(cluster.env, "predict", "s3://scans/batch1", "--profile", "bundled", "--ray", cluster.address, "-o", str(out),
            "--no-progress", "--format", "jsonl")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    got = rows(out)
    assert sorted(g["uri"] for g in got) == sorted(f"s3://scans/batch1/{p.name}" for p in sorted((root / "pages").iterdir())[:12])
    assert all(g["error"] is None for g in got)
    tasks = by_image(task_files(out))
    for name in (p.name for p in sorted((root / "pages").iterdir())[:12]):  # the same predictions as the local files
        assert tasks[f"s3://scans/batch1/{name}"]["predictions"] == single_machine[f"/data/local-files/?d=pages/{name}"]["predictions"]


def test_documents_are_rendered_on_the_driver_and_their_pages_read_on_the_cluster(cluster, root, tmp_path):
    """A 3-page PDF in a folder and one under an s3:// prefix: their pages are rendered beside the output
    (the remote one downloaded first) and become a task each, read by the actors; a broken PDF, local or
    remote, is skipped with its name; multi-page tasks are refused under --ray."""
    from test_documents import PAGES, assert_reads, write_text_pdf

    docs = tmp_path / "docs"
    docs.mkdir()
    write_text_pdf(docs / "invoice.pdf")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7 this is not a PDF")
    image = sorted((root / "pages").iterdir())[0]
    (docs / image.name).write_bytes(image.read_bytes())
    out = tmp_path / "out"
    r = cli(cluster.env, "predict", str(docs), "s3://scans/docs", "--profile", "bundled", "--root", str(tmp_path),
            "--ray", cluster.address, "-o", str(out), "--no-progress", "--format", "jsonl")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert str(docs / "broken.pdf") in r.stderr and "s3://scans/docs/broken.pdf" in r.stderr
    assert "2 documents rendered" in r.stdout and "6 page images" in r.stdout
    tasks = by_image(task_files(out))
    local_pages = sorted(k for k in tasks if "/pages/invoice-" in k)
    remote_pages = sorted(k for k in tasks if "/pages/report-" in k)
    assert len(local_pages) == len(remote_pages) == 3 and len(tasks) == 7 and f"/data/local-files/?d=docs/{image.name}" in tasks
    for pages in (local_pages, remote_pages):
        for ref, lines in zip(pages, PAGES):
            texts = " ".join(x["value"]["text"][0] for x in tasks[ref]["predictions"][0]["result"] if "text" in x["value"])
            assert_reads(texts, lines)
        assert all((tmp_path / ref.split("?d=", 1)[1]).is_file() for ref in pages)  # the pages Label Studio will show
    assert not list(Path(tempfile.gettempdir()).glob("svtr-documents-*"))  # the downloaded copies are gone

    refused = cli(cluster.env, "predict", str(docs), "--profile", "bundled", "--root", str(tmp_path), "--ray", cluster.address,
                  "-o", str(tmp_path / "out2"), "--no-progress", "--document-tasks", "per-document")
    assert refused.returncode != 0 and "--document-tasks per-page" in refused.stderr


def test_push_on_ray_prelabels_a_project_like_push_and_resumes(cluster, label_studio, synth_set):
    """`svtr-label push --ray`: actors read and predict, the driver imports; the predictions are
    those of the single-machine `push` on the same tasks, and a rerun retries only the failed task."""
    from svtr_label.labelstudio.format import recommended_config

    ls = label_studio.client()
    folder, pages = synth_set
    target = label_studio.document_root / "raypush"
    target.mkdir(exist_ok=True)
    for page in pages[:8]:
        shutil.copy(folder / page.name, target / page.name)
    tasks = [{"data": {"image": f"/data/local-files/?d=raypush/{p.name}"}} for p in pages[:8]]
    tasks.append({"data": {"image": "/data/local-files/?d=raypush/missing.png"}})
    projects = []
    for title in ("on ray", "on one machine"):
        pid = ls.request("POST", "/api/projects", json={"title": title, "label_config": recommended_config()}).json()["id"]
        ls.request("POST", f"/api/projects/{pid}/import", json=tasks)
        projects.append(pid)
    env = {**cluster.env, "LOCAL_FILES_DOCUMENT_ROOT": str(label_studio.document_root), "SVTR_FETCH_CACHE": "off"}

    def push(pid: int, *more: str) -> subprocess.CompletedProcess:
        return cli(env, "push", "--url", label_studio.url, "--api-key", label_studio.personal_token, "--project", str(pid),
                   "--profile", "bundled", "--no-progress", "--chunk", "3", *more)

    first = push(projects[0], "--ray", cluster.address)
    assert first.returncode == 1, first.stdout + first.stderr[-3000:]  # the missing file fails; the others are imported
    assert "9 tasks, 0 already had" in first.stdout and "8 predictions imported, 1 failed" in first.stdout, first.stdout
    assert push(projects[1]).returncode == 1

    def predictions(pid: int) -> dict[str, list]:
        return {t["data"]["image"]: [(p["model_version"], p["score"], p["result"]) for p in t["predictions"]] for t in ls.tasks(pid)}

    on_ray, on_one = predictions(projects[0]), predictions(projects[1])
    assert on_ray == on_one and sum(1 for v in on_ray.values() if v) == 8

    again = push(projects[0], "--ray", cluster.address)
    assert "9 tasks, 8 already had" in again.stdout and "0 predictions imported, 1 failed" in again.stdout, again.stdout
    assert predictions(projects[0]) == on_ray


def test_a_killed_driver_loses_nothing_and_the_rerun_writes_only_what_was_missing(cluster, root, tmp_path):
    out = tmp_path / "out"
    env = {**cluster.env, "SVTR_RAY_COMMIT_EVERY": "4", "SVTR_RAY_COMMIT_SECONDS": "5"}
    driver = start_cli(env, *predict_args(root, out, cluster.address), log=tmp_path / "driver.log")
    try:
        wait_until(lambda: driver.poll() is not None or len(list((out / "rows").glob("part-*"))) >= 2, timeout=600, what="two shards")
        assert driver.poll() is None, "the job ended before it could be killed: " + (tmp_path / "driver.log").read_text()[-2000:]
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.kill()
        driver.wait(30)
    committed = len(rows(out))
    assert 0 < committed < 12 * COPIES

    again = cli(env, *predict_args(root, out, cluster.address))
    assert again.returncode == 0, again.stderr[-3000:]
    m = re.search(r"(\d+) inputs: (\d+) already done .*?, (\d+) written", again.stdout)
    assert m and (int(m[1]), int(m[2]), int(m[3])) == (12 * COPIES, committed, 12 * COPIES - committed), again.stdout
    final = rows(out)
    assert sorted(g["uri"] for g in final) == sorted(str(p) for p in (root / "pages").iterdir())  # each input exactly once
    assert len(task_files(out)) == 12 * COPIES and len(by_image(task_files(out))) == 12 * COPIES


def test_a_node_killed_in_the_middle_of_a_job_loses_and_doubles_nothing(cluster, synth_set, tmp_path):
    """The second node's raylet is killed while its actor works: Ray moves its work to the head;
    every input comes out exactly once. (Last of the cluster's tests: the cluster keeps a dead node.)
    72 inputs: long enough for the second actor to load its models and take work."""
    root = copies_of(synth_set, tmp_path / "root", 6)
    second = cluster.nodes[1]
    out = tmp_path / "out"
    env = {**cluster.env, "SVTR_RAY_COMMIT_EVERY": "2", "SVTR_RAY_COMMIT_SECONDS": "2"}
    driver = start_cli(env, *predict_args(root, out, cluster.address), log=tmp_path / "driver.log")
    try:
        def second_node_working() -> bool:
            """The job has committed rows from the second node, so its actor is at work."""
            if driver.poll() is not None:
                return True
            return (out / "rows").is_dir() and any(g["node"] == second.ip for g in rows(out))

        wait_until(second_node_working, timeout=600, what="rows from the second node")
        assert driver.poll() is None, "the job ended before the node could be killed"
        raylet = second.pid_of("raylet")
        assert raylet is not None
        os.kill(raylet, signal.SIGKILL)
        driver.wait(900)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(30)
        second.stop()
    log = (tmp_path / "driver.log").read_text(errors="replace")
    assert driver.returncode == 0, log[-4000:]
    final = rows(out)
    assert sorted(g["uri"] for g in final) == sorted(str(p) for p in (root / "pages").iterdir()), log[-3000:]
    assert all(g["error"] is None for g in final)
    assert len(by_image(task_files(out))) == 72
    print("rows by node:", Counter(g["node"] for g in final))


def test_ray_local_runs_the_readme_command(root, single_machine, tmp_path):
    """`svtr-label predict DIR --ray local`: a private cluster for the one job, on a loopback address."""
    out = tmp_path / "out"
    sample = tmp_path / "root" / "pages"
    sample.mkdir(parents=True)
    for path in sorted((root / "pages").iterdir())[:4]:
        shutil.copy(path, sample / path.name)
    env = {**os.environ, "SVTR_PREDICTION_CACHE": "off", "SVTR_RAY_LOCAL_CPUS": "2"}
    r = cli(env, "predict", str(sample), "--profile", "bundled", "--root", str(tmp_path / "root"), "--ray", "-o", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr[-4000:]
    assert "by node: 127.0.0.2: 4" in r.stdout
    tasks = by_image(task_files(out))
    assert tasks == {k: v for k, v in single_machine.items() if k in tasks} and len(tasks) == 4
