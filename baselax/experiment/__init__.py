"""The research run of any registered agent, composed in one place.

* :func:`run` / :func:`main`: flags -> checks -> run directory -> training ->
  summary (``experiments/anakin_dqn.py`` is ``main``).
* :func:`evaluate`: greedy evaluation of a run directory
  (``experiments/evaluate.py``).
* :mod:`~baselax.experiment.loggers`: sinks of the per-chunk record (console,
  JSONL, TensorBoard, W&B, learning curve).
* :mod:`~baselax.experiment.rundir`: the run directory.
* :mod:`~baselax.experiment.cli`: the command line generated from the configs.

Agents are chosen by name from :mod:`baselax.agents.registry`; register
yours and it gets all of the above.
"""

from baselax.experiment.config import ExperimentConfig, LoggerConfig, RunConfig
from baselax.experiment.launch import main, parse, run
from baselax.experiment.summary import ExperimentResult


def evaluate(argv=None, prog: str = "evaluate.py") -> dict:
  """``experiments/evaluate.py``: see :mod:`baselax.experiment.evaluation`."""
  from baselax.experiment import evaluation

  return evaluation.main(argv, prog)


__all__ = [
  "ExperimentConfig",
  "ExperimentResult",
  "LoggerConfig",
  "RunConfig",
  "evaluate",
  "main",
  "parse",
  "run",
]
