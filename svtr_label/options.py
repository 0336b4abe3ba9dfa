"""Command-line options and helpers shared by the `svtr-label` commands (kept apart from cli.py,
which imports the command modules)."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def add_profile_options(p: argparse.ArgumentParser) -> None:
    """Options that choose the models; shared by every command that runs the engine."""
    p.add_argument("--profile", choices=["svtrv2", "bundled", "custom"], help="model profile (default: env SVTR_PROFILE or svtrv2)")
    p.add_argument("--det-model-dir", help="local PaddleX detection model folder (env SVTR_DET_MODEL_DIR)")
    p.add_argument("--rec-model-dir", help="local PaddleX recognition model folder (env SVTR_REC_MODEL_DIR)")
    p.add_argument("--textline-model-dir", help="local text-line orientation model folder (env SVTR_TEXTLINE_MODEL_DIR)")
    p.add_argument("--engine", choices=["paddle", "onnxruntime"], help="inference engine (env SVTR_ENGINE)")
    p.add_argument("--device", help="cpu, gpu:0, ... (env SVTR_DEVICE; default cpu)")
    p.add_argument("--cpu-threads", type=int, help="inference threads (env SVTR_CPU_THREADS)")


def profile_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment with the command-line model options applied on top."""
    env = dict(os.environ)
    for opt, key in (
        ("det_model_dir", "SVTR_DET_MODEL_DIR"),
        ("rec_model_dir", "SVTR_REC_MODEL_DIR"),
        ("textline_model_dir", "SVTR_TEXTLINE_MODEL_DIR"),
        ("engine", "SVTR_ENGINE"),
        ("device", "SVTR_DEVICE"),
        ("cpu_threads", "SVTR_CPU_THREADS"),
        ("profile", "SVTR_PROFILE"),
    ):
        value = getattr(args, opt, None)
        if value is not None:
            env[key] = str(value)
    return env


def engine_from_args(args: argparse.Namespace):
    from .engine import EngineSettings, get_engine
    from .profiles import resolve_profile

    env = profile_env(args)
    return get_engine(resolve_profile(env.get("SVTR_PROFILE"), env), EngineSettings.from_env(env))


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
    import sys

    from tqdm import tqdm

    return tqdm(disable=True if args.no_progress else None, file=sys.stderr, **kwargs)
