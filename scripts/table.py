"""Fill a paper's table cell by cell and report it beside the published values.

    python scripts/table.py --table cleanrl-classic
    python scripts/table.py --table revisiting-rainbow --fast --frames 2e6 --envs Breakout
    python scripts/table.py --report-only --out docs/results/minatar

``python scripts/table.py --help`` lists the tables and flags; the code is
``baselax.experiment.tables``.
"""

import sys

from baselax.experiment.tables import cli

if __name__ == "__main__":
  sys.exit(cli.main())
