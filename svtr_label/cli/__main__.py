"""`python -m svtr_label.cli`: the same as the `svtr-label` command."""

import sys

from svtr_label.cli.main import main

sys.exit(main())
