"""What a PaddleOCR recognition training config lets through, read from the file the trainer reads.

PaddleOCR's label encoders drop a sample without a word when its text is longer than the config
allows, and skip characters missing from its dictionary (spaces too, unless use_space_char).
Reading the same config gives the export the exact limits, so nothing it writes is dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from svtr_label.dataset.validate import RecTarget, parse_dictionary
from svtr_label.errors import TrainConfigError

# Encoders that add start and end tokens: a text must stay two shorter than max_text_length
# (PaddleOCR's NRTRLabelEncode / SARLabelEncode drop len >= max_text_length - 1).
TWO_TOKEN_ENCODERS = {"MultiLabelEncode", "NRTRLabelEncode", "SARLabelEncode"}


def read_train_config(path: str | Path) -> RecTarget:
    """The dictionary and longest text a PaddleOCR rec training config (e.g. configs/rec/SVTRv2/*.yml) accepts."""
    config_path = Path(path)
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise TrainConfigError(f"--train-config {config_path}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"--train-config {config_path}: not valid YAML ({exc})") from None
    glob = config.get("Global") or {}
    if not isinstance(glob.get("max_text_length"), int):
        raise TrainConfigError(f"{config_path}: Global.max_text_length is missing; is this a recognition training config?")
    dict_file = _dictionary_file(config_path, glob.get("character_dict_path"))
    data = dict_file.read_bytes()
    chars = parse_dictionary(data.decode("utf-8"), use_space_char=bool(glob.get("use_space_char")))
    reserved = 2 if _label_encoders(config) & TWO_TOKEN_ENCODERS else 0
    return RecTarget(data, tuple(chars), glob["max_text_length"] - reserved, f"{config_path.name} ({dict_file.name})")


def _dictionary_file(config_path: Path, value: Any) -> Path:
    """Global.character_dict_path as the trainer finds it: relative to where it runs (PaddleOCR's
    checkout), which is the current folder or one of the config's parent folders."""
    if not value:
        raise TrainConfigError(f"{config_path}: Global.character_dict_path is missing (PaddleOCR would fall back to digits and lowercase letters)")
    rel = Path(str(value))
    bases = [Path.cwd(), config_path.parent, *config_path.resolve().parents]
    for candidate in [rel] if rel.is_absolute() else [b / rel for b in bases]:
        if candidate.is_file():
            return candidate
    raise TrainConfigError(
        f"{config_path}: Global.character_dict_path {value} not found relative to the current folder or the config's "
        "folders; run from the PaddleOCR checkout the config belongs to, or pass --dict"
    )


def _label_encoders(config: dict[str, Any]) -> set[str]:
    transforms = (((config.get("Train") or {}).get("dataset") or {}).get("transforms")) or []
    return {name for op in transforms if isinstance(op, dict) for name in op if name.endswith("LabelEncode")}
