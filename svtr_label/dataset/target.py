"""The recognizer a training set is for: its dictionary (and, from a training config, its longest
text), from a dictionary file, a model folder, a profile, or the PaddleOCR training config."""

from __future__ import annotations

from pathlib import Path

from svtr_label.dataset.trainconfig import read_train_config
from svtr_label.dataset.validate import RecTarget, load_dictionary
from svtr_label.errors import ExportError, UsageError
from svtr_label.ocr.profiles import Profile, dictionary_of, model_name_of


def rec_target(
    *,
    dict_file: Path | None = None,
    rec_model_dir: Path | None = None,
    profile: Profile | None = None,
    train_config: Path | None = None,
) -> RecTarget:
    """The target named by at most one of the arguments; an empty RecTarget (nothing to check
    characters against) when none is given."""
    given = [name for name, v in (("dict", dict_file), ("rec model dir", rec_model_dir), ("profile", profile),
                                  ("train config", train_config)) if v]
    if len(given) > 1:
        raise UsageError(f"name the recognizer once: {' and '.join(given)} were both given")
    if train_config:
        return read_train_config(train_config)
    if dict_file:
        path = Path(dict_file)
        if not path.is_file():
            raise ExportError(f"--dict {path}: no such file")
        return RecTarget(path.read_bytes(), tuple(load_dictionary(path)), source=path.name)
    folder = Path(rec_model_dir) if rec_model_dir else None
    if profile is not None:
        folder = profile.rec.dir
        if folder is None:
            raise ExportError(
                f"profile {profile.name!r} has no local recognition folder (SVTR_REC_MODEL_DIR): pass --dict with the "
                "model's dictionary file (ppocr_keys_v1.txt for ch_SVTRv2_rec), or --train-config"
            )
    if folder is None:
        return RecTarget()
    chars = dictionary_of(folder)
    # inference.yml lists the space PaddleOCR appends (use_space_char); the dictionary file does not.
    listed = chars[:-1] if chars and chars[-1] == " " else chars
    return RecTarget("".join(c + "\n" for c in listed).encode("utf-8"), tuple(chars), source=model_name_of(folder, "rec"))
