"""ONNX model files: subnormal float32 weights set to zero, in place, every other byte kept.

Why: PP-OCRv6 small det, as exported, holds 256,000 subnormal weights (below 1.18e-38; 10 % of its
weights, most in one convolution). On x86, each multiplication with one takes a microcode assist: on
ONNX Runtime the detector ran 1.5-1.8x slower per page than with those weights at zero
(benchmarks/bench_models.py). A subnormal weight adds at most ~1e-34 to an activation, far below
float32's resolution of any value the model computes, so the pages read the same (tests/test_onnxfile.py).

Treating denormals as zero in the CPU (ONNX Runtime's `session.set_denormal_as_zero`) would do the same
at run time, but ONNX Runtime sets that CPU flag only on the thread that builds the process's first
session, and PaddleX's runner cannot pass the option; fixing the file holds on every thread and CPU.

The file is walked as protobuf wire format (ModelProto.graph -> GraphProto.initializer -> TensorProto):
only the payload bytes of FLOAT tensors change, and their length does not, so no message is re-encoded
and the `onnx` package is not needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from svtr_label.errors import ModelError

_MODEL_GRAPH = 7  # ModelProto.graph
_GRAPH_INITIALIZER = 5  # GraphProto.initializer
_TENSOR_DATA_TYPE, _TENSOR_FLOAT_DATA, _TENSOR_RAW_DATA = 2, 4, 9  # TensorProto fields
_FLOAT = 1  # TensorProto.DataType.FLOAT
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5  # wire types
_SMALLEST_NORMAL = float(np.finfo(np.float32).tiny)


@dataclass(frozen=True)
class Flushed:
    """A model file's bytes with subnormal weights at zero, and how many were."""

    data: bytes
    subnormal_weights: int


def flush_subnormal_weights(model: bytes, name: str = "model") -> Flushed:
    """`model` (an ONNX file's bytes) with every subnormal float32 initializer value set to zero.
    Raises ModelError naming `name` when the bytes are not an ONNX model."""
    out = bytearray(model)
    count = 0
    try:
        for start, end in _fields(model, 0, len(model), _MODEL_GRAPH):
            for t_start, t_end in _fields(model, start, end, _GRAPH_INITIALIZER):
                for d_start, d_end in _float_payloads(model, t_start, t_end):
                    count += _flush(out, d_start, d_end)
    except (IndexError, ValueError) as exc:
        raise ModelError(f"{name} is not a readable ONNX model ({exc}): re-export or re-install it") from None
    return Flushed(bytes(out), count)


def _flush(buf: bytearray, start: int, end: int) -> int:
    if (end - start) % 4:
        raise ValueError("float payload not a multiple of 4 bytes")
    values = np.frombuffer(memoryview(buf)[start:end], dtype="<f4").copy()
    subnormal = (values != 0) & (np.abs(values) < _SMALLEST_NORMAL)
    n = int(subnormal.sum())
    if n:
        values[subnormal] = 0.0
        buf[start:end] = values.tobytes()
    return n


def _float_payloads(buf: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """Byte spans of a FLOAT TensorProto's values (raw_data, or packed float_data); none for other types
    and for tensors whose data lives in an external file."""
    data_type = None
    spans = []
    for field, wire, value, v_start, v_end in _scan(buf, start, end):
        if field == _TENSOR_DATA_TYPE and wire == _VARINT:
            data_type = value
        elif field in (_TENSOR_RAW_DATA, _TENSOR_FLOAT_DATA) and wire == _LEN:
            spans.append((v_start, v_end))
    return spans if data_type == _FLOAT else []


def _fields(buf: bytes, start: int, end: int, wanted: int) -> list[tuple[int, int]]:
    """Byte spans of the length-delimited fields numbered `wanted` in the message at buf[start:end]."""
    return [(s, e) for field, wire, _, s, e in _scan(buf, start, end) if field == wanted and wire == _LEN]


def _scan(buf: bytes, pos: int, end: int):
    """(field number, wire type, varint value, payload start, payload end) of each field of a message."""
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, after = _varint(buf, pos)
            yield field, wire, value, pos, after
        elif wire == _LEN:
            length, start = _varint(buf, pos)
            after = start + length
            if after > end:
                raise ValueError(f"field {field} runs past its message")
            yield field, wire, None, start, after
        elif wire in (_I64, _I32):
            after = pos + (8 if wire == _I64 else 4)
            yield field, wire, None, pos, after
        else:
            raise ValueError(f"wire type {wire} at byte {pos}")
        pos = after
    if pos != end:
        raise ValueError("message ends mid-field")


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
