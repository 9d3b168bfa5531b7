"""The statistics a table reports: per cell over seeds, and per agent across envs.

* :func:`summary`: mean, the standard deviation over seeds (``ddof=0``, as
  CleanRL's and openrlbenchmark's "mean ± std") and a 95% Student-t
  confidence interval of the mean.
* :func:`iqm`: the interquartile mean of normalised scores over every
  (seed, env) of an agent, with a 95% stratified bootstrap interval (Agarwal
  et al. 2021, rliable; ``pip install -e ".[stats]"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def summary(values: Sequence[float | None] | np.ndarray) -> dict[str, Any]:
  """``{"mean", "std", "ci95", "n"}`` of the finite ``values`` (NaN/None left out)."""
  x = np.asarray([np.nan if v is None else v for v in values], np.float64)
  x = x[np.isfinite(x)]
  if len(x) == 0:
    return {"mean": None, "std": None, "ci95": None, "n": 0}
  out: dict[str, Any] = {
    "mean": float(x.mean()),
    "std": float(x.std()),
    "ci95": None,
    "n": int(len(x)),
  }
  if len(x) > 1:
    from scipy import stats

    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    out["ci95"] = [out["mean"] - half, out["mean"] + half]
  return out


def iqm(scores: np.ndarray, reps: int = 2000, seed: int = 0) -> dict[str, Any] | None:
  """IQM of ``scores`` ``(runs, tasks)`` with its 95% stratified bootstrap interval.

  Returns ``None`` without rliable (the report then says how to get it).
  """
  try:
    from rliable import library as rly
    from rliable import metrics
  except ImportError:
    return None
  # rliable 1.2 draws from numpy's global generator: seed it, then restore it.
  saved = np.random.get_state()
  np.random.seed(seed)
  try:
    points, intervals = rly.get_interval_estimates(
      {"x": np.asarray(scores, np.float64)},
      lambda x: np.array([metrics.aggregate_iqm(x)]),
      reps=reps,
    )
  finally:
    np.random.set_state(saved)
  return {
    "iqm": float(points["x"][0]),
    "ci95": [float(intervals["x"][0, 0]), float(intervals["x"][1, 0])],
    "runs": int(scores.shape[0]),
    "tasks": int(scores.shape[1]),
  }


def fmt(stat: dict[str, Any] | None, spread: str = "ci95", digits: int = 1) -> str:
  """``mean [lo, hi]`` (``spread="ci95"``) or ``mean ± std`` (``"std"``); ``-`` if empty."""
  if not stat or stat.get("mean") is None:
    return "-"
  mean = f"{stat['mean']:.{digits}f}"
  if spread == "std":
    return f"{mean} ± {stat['std']:.{digits}f}" if stat.get("std") is not None else mean
  if not stat.get("ci95"):
    return mean
  lo, hi = stat["ci95"]
  return f"{mean} [{lo:.{digits}f}, {hi:.{digits}f}]"
