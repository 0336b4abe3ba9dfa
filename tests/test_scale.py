"""The scale-out layer without a cluster: what a job reads, its output folder's commit protocol
and task files, and the error when Ray is missing. Fast: no models, no Ray."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from svtr_label.core.page import Page, Region
from svtr_label.errors import ImageError, ScaleError, UsageError
from svtr_label.scale.inputs import list_inputs, read_input
from svtr_label.scale.output import JobOutput, Row


def page(name: str, text: str = "hello") -> Page:
    return Page(width=100, height=40, sha256=name * 4, model_version="m@1",
                regions=(Region(id=f"{name}-0", points=((1, 1), (60, 1), (60, 20), (1, 20)), text=text, score=0.9),))


def task_of(row: Row) -> dict | None:
    return {"data": {"image": row.uri}, "predictions": [{"model_version": row.model_version}]} if row.page else None


# --- inputs ---------------------------------------------------------------------------------------


@pytest.mark.server
def test_an_s3_prefix_lists_its_pdfs_too_and_reading_one_as_an_image_says_what_to_do(tmp_path, monkeypatch):
    """moto's S3-compatible server on loopback (a real HTTP server). A PDF under a prefix used to be
    left out of the listing without a word; now it is listed (`predict --ray` renders it on the driver:
    tests/test_ray.py), and read where one image is expected it says what to do."""
    import boto3

    from conftest_ray import s3_server
    from svtr_label.core.images import decode_image
    from svtr_label.core.synth import make_page

    make_page(3, n_lines=1).image.save(tmp_path / "p1.png")
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    (tmp_path / "notes.txt").write_text("not an input")
    with s3_server() as url:
        for name, value in {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():
            monkeypatch.setenv(name, value)
        client = boto3.client("s3", endpoint_url=url)
        client.create_bucket(Bucket="listing")
        for name in ("p1.png", "doc.pdf", "notes.txt"):
            client.upload_file(str(tmp_path / name), "listing", f"in/{name}")
        uris = list_inputs(["s3://listing/in"])
        assert uris == ["s3://listing/in/doc.pdf", "s3://listing/in/p1.png"]
        with pytest.raises(ImageError, match=r"doc\.pdf: a PDF document, not an image: `svtr-label predict FILE` renders"):
            decode_image(read_input(uris[0], 1_000_000), uris[0])


def test_folders_files_and_manifests_list_each_input_once_with_manifest_paths_relative_to_it(tmp_path):
    scans = tmp_path / "scans"
    (scans / "sub").mkdir(parents=True)
    for name in ("b.png", "a.jpg", "sub/c.tif", "notes.txt"):
        (scans / name).write_bytes(b"x")
    (tmp_path / "list.txt").write_text("# a comment\nscans/a.jpg\n\ns3://bucket/p/1.png\nhttps://img.example.com/2.jpg\n")
    (tmp_path / "list.jsonl").write_text('{"uri": "scans/b.png"}\n"scans/sub/c.tif"\n')
    found = list_inputs([str(scans), str(tmp_path / "list.txt"), str(tmp_path / "list.jsonl")])
    assert found == [str(scans / "a.jpg"), str(scans / "b.png"), str(scans / "sub/c.tif"),
                     "s3://bucket/p/1.png", "https://img.example.com/2.jpg"]


def test_a_parquet_manifest_gives_its_uri_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"uri": ["s3://b/1.png", "x.jpg", None], "other": [1, 2, 3]}), tmp_path / "m.parquet")
    assert list_inputs([str(tmp_path / "m.parquet")]) == ["s3://b/1.png", str(tmp_path / "x.jpg")]
    pq.write_table(pa.table({"path_to": ["a"]}), tmp_path / "bad.parquet")
    with pytest.raises(UsageError, match="no 'uri' column"):
        list_inputs([str(tmp_path / "bad.parquet")])


@pytest.mark.parametrize("line, message", [("{not json", "entry 1: not JSON"), ('{"file": "a.png"}', "entry 1: no URI")])
def test_a_bad_manifest_entry_names_the_file_and_entry(tmp_path, line, message):
    (tmp_path / "m.jsonl").write_text(line + "\n")
    with pytest.raises(UsageError, match=message):
        list_inputs([str(tmp_path / "m.jsonl")])


def test_a_missing_source_is_a_usage_error_naming_it(tmp_path):
    with pytest.raises(UsageError, match="nowhere: no such file, folder or manifest"):
        list_inputs([str(tmp_path / "nowhere")])


def test_reading_an_input_holds_to_the_byte_limit(tmp_path):
    (tmp_path / "big.png").write_bytes(b"x" * 2000)
    assert read_input(str(tmp_path / "big.png"), 2000) == b"x" * 2000
    with pytest.raises(Exception, match="over the 1000-byte limit"):
        read_input(str(tmp_path / "big.png"), 1000)
    with pytest.raises(Exception, match="need an image fetcher"):
        read_input("http://example.com/a.png", 1000)


# --- the output folder ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_committed_rows_round_trip_and_count_as_done_for_their_model_version(tmp_path, fmt):
    out = JobOutput(tmp_path / "out", fmt)
    rows = [Row("a.png", "m@1", "s" * 64, page("a"), None, "127.0.0.2"), Row("b.png", "m@1", None, None, "b.png: broken", "127.0.0.3")]
    shard = out.commit(rows)
    assert shard.name == f"part-000001.{fmt}" and [r for r in out.rows()] == rows
    assert out.done("m@1") == {"a.png", "b.png"} and out.done("m@2") == set()
    assert out.commit([Row("c.png", "m@2", page=page("c"))]).name == f"part-000002.{fmt}"
    assert not [p for p in (tmp_path / "out" / "rows").iterdir() if p.name.startswith(".")]  # no temporary file left


def test_another_format_in_the_same_folder_is_refused(tmp_path):
    JobOutput(tmp_path, "jsonl").commit([Row("a.png", "m@1", page=page("a"))])
    with pytest.raises(ScaleError, match="--format jsonl"):
        JobOutput(tmp_path, "parquet")


def test_task_files_cover_each_shard_once_hold_at_most_max_tasks_and_skip_failed_inputs(tmp_path):
    out = JobOutput(tmp_path, "jsonl")
    for n in range(5):
        out.commit([Row(f"{n}-{k}.png", "m@1", page=page(f"{n}{k}")) for k in range(3)] + [Row(f"{n}-bad.png", "m@1", error="broken")])
    written = out.write_task_files(task_of, max_tasks=7)
    images = [t["data"]["image"] for f in written for t in json.loads(f.read_text())]
    assert [f.name for f in written] == ["tasks-000001.json", "tasks-000003.json", "tasks-000005.json"]
    assert sorted(images) == sorted(f"{n}-{k}.png" for n in range(5) for k in range(3))
    assert all(len(json.loads(f.read_text())) <= 7 for f in written)
    assert out.write_task_files(task_of, max_tasks=7) == []  # nothing new: nothing written

    out.commit([Row("late.png", "m@1", page=page("l"))])
    (late,) = out.write_task_files(task_of, max_tasks=7)
    assert [t["data"]["image"] for t in json.loads(late.read_text())] == ["late.png"]


def test_task_files_written_by_a_run_killed_before_its_index_are_rewritten_not_doubled(tmp_path):
    out = JobOutput(tmp_path, "jsonl")
    out.commit([Row("a.png", "m@1", page=page("a"))])
    out.write_task_files(task_of)
    (tmp_path / "tasks" / "index.json").unlink()  # as if killed between the task file and the index
    out.commit([Row("b.png", "m@1", page=page("b"))])
    written = out.write_task_files(task_of)
    files = sorted((tmp_path / "tasks").glob("tasks-*.json"))
    assert written == files == [tmp_path / "tasks" / "tasks-000001.json"]
    assert [t["data"]["image"] for t in json.loads(files[0].read_text())] == ["a.png", "b.png"]


def test_without_ray_the_error_names_the_extra(monkeypatch):
    """Ray is an optional extra; its absence is simulated by hiding the module from import."""
    from svtr_label.scale.job import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ScaleError, match=r"pip install 'svtr-label\[ray\]'"):
        import_ray()


def test_predict_with_ray_wants_an_output_folder(tmp_path, capsys):
    from svtr_label.cli import main

    assert main(["predict", str(Path(__file__).parents[1] / "samples"), "--profile", "bundled", "--ray"]) == 2
    assert "-o/--output names a folder" in capsys.readouterr().err


@pytest.mark.pipeline
def test_the_gpu_jobs_decoded_path_gives_the_rows_of_the_bytes_path(synth_set):
    """GPU jobs decode on CPU tasks and hand the actors pixels; the actor must read them as it reads
    bytes. Run here on the CPU (no GPU on this machine): the same actor code, in this process."""
    import pyarrow as pa

    from svtr_label.scale import actors
    from svtr_label.settings import Settings

    folder, pages = synth_set
    uris = [str(folder / p.name) for p in pages[:3]] + [str(folder / "missing.png")]
    read = actors.read_batch(pa.table({"uri": uris}), max_bytes=50_000_000, fetch=Settings().fetch)
    assert read["read_error"][3] and "missing.png" in read["read_error"][3]
    settings = Settings.from_env({"SVTR_PROFILE": "bundled", "SVTR_PREDICTION_CACHE": "off"})
    predictor = actors.PagePredictor(actors.actor_settings(settings, pipelines=1, threads=1, gpu=False))
    from_bytes = predictor(pa.table(read))
    decoded = actors.decode_batch(pa.table(read), limits=settings.images)
    from_pixels = predictor(pa.table(decoded))
    assert from_pixels == from_bytes
    assert [p is not None for p in from_bytes["page"]] == [True, True, True, False]


def test_gpu_actors_refuse_a_profile_on_onnxruntime(tmp_path, capsys):
    from svtr_label.cli import main

    args = ["predict", str(Path(__file__).parents[1] / "samples"), "--profile", "bundled", "--ray", "-o", str(tmp_path / "out"), "--gpus-per-actor", "1"]
    assert main(args) == 2
    assert "runs on ONNX Runtime" in capsys.readouterr().err
