"""Command-line options and helpers shared by the `svtr-label` commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from svtr_label.settings import ENGINES, PROFILE_NAMES, Settings


def add_profile_options(p: argparse.ArgumentParser) -> None:
    """Options that choose the models; shared by every command that runs the engine."""
    p.add_argument("--profile", choices=PROFILE_NAMES, help="model profile (default: env SVTR_PROFILE or svtrv2)")
    p.add_argument("--det-model-dir", type=Path, help="local PaddleX detection model folder (env SVTR_DET_MODEL_DIR)")
    p.add_argument("--rec-model-dir", type=Path, help="local PaddleX recognition model folder (env SVTR_REC_MODEL_DIR)")
    p.add_argument("--textline-model-dir", type=Path, help="local text-line orientation model folder (env SVTR_TEXTLINE_MODEL_DIR)")
    p.add_argument("--engine", choices=ENGINES, help="inference engine (env SVTR_ENGINE)")
    p.add_argument("--device", help="cpu, gpu:0, ... (env SVTR_DEVICE; default cpu)")
    p.add_argument("--cpu-threads", type=int, help="inference threads (env SVTR_CPU_THREADS)")


def _given(args: argparse.Namespace, **names: str) -> dict[str, Any]:
    """{setting field: value} of the options given on the command line (attribute names as keyword values)."""
    return {field: getattr(args, attr) for field, attr in names.items() if getattr(args, attr, None) is not None}


def with_profile_options(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with the command-line model options applied on top of the environment's."""
    models = _given(args, profile="profile", det_model_dir="det_model_dir", rec_model_dir="rec_model_dir",
                    textline_model_dir="textline_model_dir", engine="engine")
    engine = _given(args, device="device", cpu_threads="cpu_threads")
    return replace(settings, models=replace(settings.models, **models), engine=replace(settings.engine, **engine))


def add_label_studio_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="Label Studio URL (env LABEL_STUDIO_URL)")
    p.add_argument("--api-key", help="personal access token or legacy token (env LABEL_STUDIO_API_KEY)")


def with_label_studio_options(settings: Settings, args: argparse.Namespace) -> Settings:
    """--url and --api-key over LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, for the API and for fetching images."""
    ls = replace(settings.label_studio, **_given(args, url="url", api_key="api_key"))
    if ls.url:
        ls = replace(ls, url=ls.url.rstrip("/"))
    return replace(settings, label_studio=ls, fetch=replace(settings.fetch, ls_url=ls.url, api_key=ls.api_key))


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON next to the target and rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, ensure_ascii=False, indent=1)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def progress_bar(args: argparse.Namespace, **kwargs: Any) -> Any:
    """A tqdm bar on stderr; off with --no-progress, and when stderr is not a terminal (logs, CI)."""
    from tqdm import tqdm

    return tqdm(disable=True if args.no_progress else None, file=sys.stderr, **kwargs)
