"""Fill as many table cells as fit in a time budget, several at once (a lent accelerator).

    python scripts/device_table.py --out "$OUT" --budget-s 420 --jobs 8

Probes each agent's speed alone and side by side, picks the cells that fit
(10M frames, else 2M), runs them and writes ``probe.json``,
``cells.tar.gz`` and ``logs.tar.gz`` to ``--out``. ``--help`` lists the
flags; the code is ``baselax.experiment.tables.budget``.
"""

import sys

from baselax.experiment.tables import budget

if __name__ == "__main__":
  sys.exit(budget.main())
