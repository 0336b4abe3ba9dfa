"""`svtr-label models` (list profiles, lay out the bundled folders) and `svtr-label config`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from svtr_label.errors import ModelError
from svtr_label.labelstudio.format import recommended_config
from svtr_label.ocr.profiles import bundled_model_dirs
from svtr_label.services import Services
from svtr_label.settings import PROFILE_NAMES


def add_parser(sub: Any) -> None:
    p = sub.add_parser("models", help="list model profiles, or lay out the bundled model folders")
    p.add_argument("action", nargs="?", choices=["list", "prepare"], default="list")
    p.add_argument("profile", nargs="?", default="bundled", help="profile to prepare (only 'bundled' is laid out locally)")
    p.set_defaults(func=cmd_models)

    c = sub.add_parser("config", help="print the recommended Label Studio labeling config")
    c.add_argument("--multipage", action="store_true", help="its form for multi-page tasks (PDFs: <Image valueList=\"$pages\">)")
    c.set_defaults(func=cmd_config)


def cmd_models(args: argparse.Namespace, services: Services) -> int:
    if args.action == "prepare":
        if args.profile != "bundled":
            raise ModelError(
                f"only the bundled profile is laid out by svtr-label; {args.profile!r} models come from PaddleOCR's "
                "download or from the folders you point SVTR_DET_MODEL_DIR / SVTR_REC_MODEL_DIR at"
            )
        det, rec = bundled_model_dirs(services.settings.models_dir, create=True)
        print(f"bundled det: {det}\nbundled rec: {rec}")
        return 0
    for name in PROFILE_NAMES:
        try:
            info: Any = services.profile(name).describe()
        except ModelError as exc:
            info = {"profile": name, "unavailable": str(exc)}
        print(json.dumps(info, ensure_ascii=False, indent=2))
    return 0


def cmd_config(args: argparse.Namespace, services: Services) -> int:
    print(recommended_config(getattr(args, "multipage", False)), end="")
    return 0
