"""`svtr-label`, the command line: one module per command group, `main` dispatches."""

from svtr_label.cli.main import main

__all__ = ["main"]
