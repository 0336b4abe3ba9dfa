"""`svtr-label predict` output imported into a real Label Studio 1.23: the tasks file is importable as is,
its predictions are stored, and the images it points at are served."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from svtr_label.labelstudio.format import recommended_config, results_to_regions

pytestmark = [pytest.mark.labelstudio, pytest.mark.pipeline]


def test_predict_tasks_file_imports_with_its_predictions(label_studio, real_images, tmp_path):
    scans = label_studio.document_root / "scans"
    scans.mkdir(exist_ok=True)
    for name in ("ch_en_num.jpg", "img_exif_orientation.jpg"):
        shutil.copy(real_images / name, scans / name)
    out = tmp_path / "tasks.json"
    res = subprocess.run(
        [sys.executable, "-m", "svtr_label.cli", "predict", str(scans), "--profile", "bundled",
         "--root", str(label_studio.document_root), "-o", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )
    assert res.returncode == 0, res.stderr
    tasks = json.loads(out.read_text(encoding="utf-8"))

    ls = label_studio.client()
    pid = ls.request("POST", "/api/projects", json={"title": "svtr import", "label_config": recommended_config()}).json()["id"]
    ls.request("POST", "/api/storages/localfiles", json={"project": pid, "path": str(scans), "use_blob_urls": True, "title": "scans"})
    imported = ls.request("POST", f"/api/projects/{pid}/import", json=tasks).json()
    assert imported["task_count"] == 2 and imported["prediction_count"] == 2

    stored = {t["data"]["image"]: t for t in ls.tasks(pid)}
    assert set(stored) == {"/data/local-files/?d=scans/ch_en_num.jpg", "/data/local-files/?d=scans/img_exif_orientation.jpg"}
    for task in tasks:
        ref = task["data"]["image"]
        (pred,) = ls.request("GET", f"/api/predictions/?task={stored[ref]['id']}").json()
        assert pred["model_version"] == task["predictions"][0]["model_version"]
        regions = results_to_regions(pred["result"])
        assert [r.text for r in regions] == [r.text for r in results_to_regions(task["predictions"][0]["result"])]
        served = ls.request("GET", ref)  # what the labeling page loads
        assert served.status_code == 200 and served.content == (scans / ref.rsplit("/", 1)[1]).read_bytes()
    first = results_to_regions(ls.request("GET", f"/api/predictions/?task={stored['/data/local-files/?d=scans/ch_en_num.jpg']['id']}").json()[0]["result"])
    assert first[0].text == "正品促销"
