"""Final results of a many-seed run, aggregated as the field reports them.

Agarwal et al. 2021 ("Deep reinforcement learning at the edge of the
statistical precipice", arXiv:2108.13264): report the interquartile mean
(IQM) of the runs' scores with a 95% stratified bootstrap confidence
interval, not a mean over a handful of seeds. The statistics are rliable's
(``pip install -e ".[stats]"``); without it the summary keeps mean, std and
range, and says how to get the rest.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

#: Bootstrap resamples for the confidence interval (rliable's default is 50k;
#: 2,000 already pins a 95% interval of a few seeds to the precision printed).
BOOTSTRAP_REPS = 2000


def summarise_final_returns(
  final_returns: Any, reps: int = BOOTSTRAP_REPS, seed: int = 0
) -> dict[str, Any]:
  """Mean, std, range and (with rliable, 2 seeds or more) IQM with a 95% CI.

  Args:
    final_returns: ``(seeds,)`` final greedy evaluation return per seed.
    reps: bootstrap resamples.
    seed: seeds the bootstrap, so a summary can be reproduced.

  Returns:
    ``{"seeds", "final_returns", "mean", "std", "min", "max", "iqm",
    "iqm_ci95"}``; ``iqm`` and ``iqm_ci95`` are ``None`` for one seed or
    without rliable.
  """
  scores = np.asarray(final_returns, np.float64).reshape(-1)
  out: dict[str, Any] = dict(
    seeds=int(scores.size),
    final_returns=scores.tolist(),
    mean=float(scores.mean()),
    std=float(scores.std()),
    min=float(scores.min()),
    max=float(scores.max()),
    iqm=None,
    iqm_ci95=None,
  )
  if scores.size < 2:
    return out
  try:
    from rliable import library as rly
    from rliable import metrics
  except ImportError:
    out["note"] = "IQM and its confidence interval need rliable: pip install -e '.[stats]'"
    return out
  # One task (this env): scores are (runs, tasks) = (seeds, 1). rliable 1.2's
  # stratified bootstrap draws from numpy's global generator whatever
  # random_state says, so seed that, and leave it as it was afterwards.
  saved = np.random.get_state()
  np.random.seed(seed)
  try:
    points, intervals = rly.get_interval_estimates(
      {"run": scores[:, None]}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps
    )
  finally:
    np.random.set_state(saved)
  out["iqm"] = float(points["run"][0])
  out["iqm_ci95"] = [float(intervals["run"][0, 0]), float(intervals["run"][1, 0])]
  return out


def describe(summary: dict[str, Any]) -> str:
  """One line: IQM and CI when known, then mean ± std and the minimum."""
  spread = f"mean {summary['mean']:.1f} ± {summary['std']:.1f}, min {summary['min']:.1f}"
  if summary["iqm"] is None:
    return f"{summary['seeds']} seed(s): {spread}" + (
      f" ({summary['note']})" if "note" in summary else ""
    )
  low, high = summary["iqm_ci95"]
  return (
    f"{summary['seeds']} seeds: IQM {summary['iqm']:.1f} (95% CI {low:.1f} to "
    f"{high:.1f}, stratified bootstrap), {spread}"
  )


def write_summary(run_path: str, summary: dict[str, Any]) -> str:
  """Writes ``summary.json`` into the run directory; returns its path."""
  path = os.path.join(run_path, "summary.json")
  with open(path, "w") as f:
    json.dump(summary, f, indent=2)
  return path
