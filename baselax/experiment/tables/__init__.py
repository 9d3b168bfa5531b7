"""The papers' tables, filled cell by cell and reported beside the published values.

* :mod:`~baselax.experiment.tables.specs`: the tables (a preset, agents, env
  ids, seeds, a frame budget, the paper's measure and published values).
* :mod:`~baselax.experiment.tables.cells`: one cell, run (resumable) and
  reduced to a JSON file.
* :mod:`~baselax.experiment.tables.report`: a results directory's README
  and figures, from its cell files.
* :mod:`~baselax.experiment.tables.cli`: ``scripts/table.py``.
"""

from baselax.experiment.tables.cli import main
from baselax.experiment.tables.specs import TABLES, Published, Table

__all__ = ["TABLES", "Published", "Table", "main"]
