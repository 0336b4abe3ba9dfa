"""`svtr-label`: pre-annotate, list models, print the labeling config, export, evaluate, push, pull.

Each command module exposes `add_parser(subparsers)` and sets `func(args, services)` on its
parser; `main` reads the settings once, builds the services and dispatches. A command returns
its exit code; svtr-label's own errors print one line and exit with the code errors.EXIT_CODES gives.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from svtr_label.cli import evaluate, export, labelstudio, models, predict
from svtr_label.errors import SvtrLabelError, exit_code_for
from svtr_label.services import Services

COMMAND_MODULES = (predict, models, export, evaluate, labelstudio)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args, Services.from_env()) or 0)
    except SvtrLabelError as exc:
        print(f"svtr-label {args.command}: error: {exc}", file=sys.stderr)
        return exit_code_for(exc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svtr-label", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the pipeline does")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_parser(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
