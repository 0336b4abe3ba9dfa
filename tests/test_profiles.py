"""Model profiles: what each loads, and the errors a user meets when something is missing."""

import subprocess
import sys

import pytest
import yaml

from svtr_label.ocr.engine import OcrEngine
from svtr_label.errors import ModelError, SvtrLabelError
from svtr_label.ocr.profiles import BUNDLES, bundled_dictionary, bundled_model_dirs, dictionary_of, model_name_of, paddlex_dictionary
from conftest import profile_from, models_dir  # noqa: E402


def test_default_profile_is_the_seed_card_pipeline():
    p = profile_from()
    assert (p.name, p.det.name, p.rec.name) == ("svtrv2", "PP-OCRv5_server_det", "ch_SVTRv2_rec")
    assert p.use_textline_orientation and not p.use_doc_orientation_classify and not p.use_doc_unwarping
    switched = profile_from("svtrv2", {"SVTR_USE_DOC_ORIENTATION": "1", "SVTR_USE_DOC_UNWARPING": "true"})
    assert switched.use_doc_orientation_classify and switched.use_doc_unwarping


def test_profile_from_env():
    assert profile_from(None, {"SVTR_PROFILE": "bundled"}).name == "bundled"


def test_bundled_folders_are_paddlex_model_folders():
    det, rec = bundled_model_dirs(models_dir(), create=True)
    for folder in (det, rec):
        assert (folder / "inference.onnx").is_file() and (folder / "inference.yml").is_file()
    chars = dictionary_of(rec)
    assert len(chars) == 18709 and chars[-1] == " "  # RapidOCR's PP-OCRv6 small dictionary + PaddleOCR's space



def test_the_bundled_dictionary_is_one_string_that_paddlex_decodes_as_the_wheels_list():
    """One YAML scalar instead of 18,709 list entries, which PaddleX's pure-Python YAML loader took
    0.3-0.4 s to parse on every pipeline build; the decoder must still hold the very same characters."""
    _, rec = bundled_model_dirs(models_dir())
    assert isinstance(yaml.safe_load((rec / "inference.yml").read_text(encoding="utf-8"))["PostProcess"]["character_dict"], str)
    from paddlex.inference.models.text_recognition.processors import CTCLabelDecode

    decoder = CTCLabelDecode(character_list=paddlex_dictionary(dictionary_of(rec)))
    assert decoder.character == ["blank", *bundled_dictionary(BUNDLES["bundled"]), " ", " "]  # PaddleX appends its own space


def test_a_dictionary_with_entries_of_several_code_points_stays_a_list():
    chars = ["a", "\U0001F1E9\U0001F1EA", " "]  # PP-OCRv5's dictionary holds flags, two code points each
    assert paddlex_dictionary(chars) == chars
    assert paddlex_dictionary(["a", "b", " "]) == "ab "


@pytest.mark.parametrize(
    "name, env, message",
    [
        ("custom", {}, "SVTR_DET_MODEL_DIR and SVTR_REC_MODEL_DIR"),
        ("nope", {}, "SVTR_PROFILE='nope' is not valid: expected one of svtrv2, ppocrv6, ppocrv6-small, ppocrv6-tiny, bundled, bundled-v5, custom"),
    ],
)
def test_profile_errors(name, env, message):
    with pytest.raises(SvtrLabelError, match=message):
        profile_from(name, env)


def test_folder_errors_name_the_folder_and_the_fix(tmp_path):
    det, _ = bundled_model_dirs(models_dir())
    empty = tmp_path / "my_rec"
    empty.mkdir()
    (empty / "inference.onnx").write_bytes(b"x")
    cases = [
        (tmp_path / "missing", "does not exist"),
        (empty, "has no inference.yml"),
    ]
    for folder, message in cases:
        profile = profile_from("custom", {"SVTR_DET_MODEL_DIR": str(det), "SVTR_REC_MODEL_DIR": str(folder)})
        with pytest.raises(ModelError, match=message) as err:
            OcrEngine(profile)
        assert str(folder) in str(err.value)
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "inference.yml").write_text("Global: {model_name: x}\n")
    with pytest.raises(ModelError, match="holds no weights"):
        OcrEngine(profile_from("custom", {"SVTR_DET_MODEL_DIR": str(det), "SVTR_REC_MODEL_DIR": str(no_weights)}))


def test_models_command_lists_profiles_and_prepares_bundled():
    out = subprocess.run([sys.executable, "-m", "svtr_label.cli", "models"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert '"profile": "svtrv2"' in out.stdout and "ch_SVTRv2_rec" in out.stdout and '"profile": "bundled"' in out.stdout
    prep = subprocess.run([sys.executable, "-m", "svtr_label.cli", "models", "prepare", "bundled"], capture_output=True, text=True, timeout=120)
    assert prep.returncode == 0 and "PP-OCRv6_small_rec" in prep.stdout
    cfg = subprocess.run([sys.executable, "-m", "svtr_label.cli", "config"], capture_output=True, text=True, timeout=120)
    assert 'perRegion="true"' in cfg.stdout


def test_a_failed_download_names_every_missing_model_and_its_variable():
    from svtr_label.ocr.engine import _load_failure_hint

    profile = profile_from("svtrv2", {"SVTR_REC_MODEL_DIR": "/models/rec"})
    hint = _load_failure_hint(profile, Exception("No model source is available!"))
    assert "PP-OCRv5_server_det, PP-LCNet_x1_0_textline_ori" in hint and "ch_SVTRv2_rec" not in hint.split("\n")[1]
    assert "SVTR_DET_MODEL_DIR, SVTR_TEXTLINE_MODEL_DIR" in hint and "SVTR_USE_TEXTLINE_ORIENTATION=false" in hint
    assert "--profile bundled" in hint


def _lay_out_and_load(base: str, barrier, errors) -> None:
    """A gunicorn worker on first use: lay out the bundled folders (if missing) and read them."""
    from pathlib import Path

    try:
        barrier.wait()
        det, rec = bundled_model_dirs(Path(base))
        for folder in (det, rec):
            model_name_of(folder, "det")  # the check the engine makes before loading
        assert len(dictionary_of(rec)) == 18709
    except Exception as exc:  # reported to the parent: a failure in a child would pass unseen
        errors.put(repr(exc))


def test_workers_laying_out_the_bundled_folders_at_once_all_load_them(tmp_path):
    """One worker removing the complete folder another had just renamed into place made the
    other see inference.yml without weights ("holds no weights")."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for trial in range(4):
        barrier, errors = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_lay_out_and_load, args=(str(tmp_path / f"m{trial}"), barrier, errors)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        assert errors.empty(), errors.get()
