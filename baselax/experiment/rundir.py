"""A run's directory and its live output: metrics, TensorBoard, plots, progress.

Any trainer that reports per-chunk summaries (``baselax.anakin.train``'s
``on_chunk``) can log into a :class:`RunDirectory`::

    runs/<env>-<agent>-<timestamp>/
      config.json          the resolved configuration of the run
      metrics.jsonl        one JSON line per chunk (NaN written as null)
      events.out.tfevents.*  TensorBoard scalars (if tensorboardX is installed)
      learning_curve.png   evaluation return vs env steps, mean and band over seeds
      checkpoints/         orbax checkpoints (``baselax.anakin.checkpoint``)

:class:`Progress` shows a tqdm bar (or one log line per chunk when the output
is not a terminal).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from baselax.anakin import checkpoint as checkpoint_lib

logger = logging.getLogger("baselax.runs")

#: Summary keys that are per-run bookkeeping, not per-seed metrics.
_COUNTERS = ("chunk", "env_steps", "wall_time", "sps", "updates")


def default_run_dir(env_id: str, agent_name: str, root: str = "runs") -> str:
  """``runs/<env>-<agent>-<YYYYmmdd-HHMMSS>``."""
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  safe_env = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in env_id)
  return os.path.join(root, f"{safe_env}-{agent_name.lower()}-{stamp}")


def checkpoint_dir(run_path: str) -> str:
  """Where a run directory keeps its checkpoints: ``<run_path>/checkpoints``."""
  return os.path.join(run_path, "checkpoints")


def seed_mean(x: Any) -> float:
  """Mean over seeds of the finite values; NaN if there are none."""
  x = np.asarray(x, np.float64)
  finite = np.isfinite(x)
  return float(x[finite].mean()) if finite.any() else float("nan")


def _tensorboard_writer(path: str, enabled: Optional[bool]):
  """A tensorboardX writer, or None (disabled, or not installed)."""
  if enabled is False:
    return None
  try:
    import tensorboardX  # an optional dependency: pip install baselax[tensorboard]
  except ImportError:
    if enabled:
      raise ImportError("TensorBoard logging needs tensorboardX: pip install "
                        "'baselax[tensorboard]' (or pass tensorboard=False).")
    logger.info("tensorboardX is not installed: no TensorBoard event files.")
    return None
  return tensorboardX.SummaryWriter(path)


class RunDirectory:
  """Writes one run's ``config.json``, ``metrics.jsonl``, TensorBoard and plot.

  Use :meth:`log_chunk` as (part of) the trainer's ``on_chunk`` callback.

  Args:
    path: the directory (created if needed).
    config: the resolved, JSON-able configuration; written to ``config.json``
      (a resumed run keeps the one already there).
    tensorboard: ``None``: TensorBoard event files if tensorboardX is
      installed; ``True``: required; ``False``: off.
    resume_from_chunk: continuing a run that had done this many chunks: lines
      of ``metrics.jsonl`` for later chunks (written after the checkpoint)
      are dropped, so the file holds each chunk once.
  """

  def __init__(self, path: str, config: Mapping[str, Any], *,
               tensorboard: Optional[bool] = None,
               resume_from_chunk: Optional[int] = None):
    self.path = os.path.abspath(os.path.expanduser(path))
    os.makedirs(self.path, exist_ok=True)
    self.metrics_path = os.path.join(self.path, "metrics.jsonl")
    self.config_path = os.path.join(self.path, "config.json")
    if resume_from_chunk is None or not os.path.exists(self.config_path):
      with open(self.config_path, "w") as f:
        json.dump(checkpoint_lib.to_json(dict(config)), f, indent=2, sort_keys=True)
    if resume_from_chunk is not None and os.path.exists(self.metrics_path):
      with open(self.metrics_path) as f:
        kept = [line for line in f
                if line.strip() and json.loads(line)["chunk"] < resume_from_chunk]
      with open(self.metrics_path, "w") as f:
        f.writelines(kept)
    self._tb = _tensorboard_writer(self.path, tensorboard)

  @property
  def checkpoint_dir(self) -> str:
    return checkpoint_dir(self.path)

  @property
  def tensorboard(self) -> bool:
    return self._tb is not None

  def log_chunk(self, summary: Mapping[str, Any]) -> None:
    """Appends one chunk's summary to ``metrics.jsonl`` (and TensorBoard)."""
    first = [k for k in _COUNTERS if k in summary]
    line = {k: checkpoint_lib.to_json(summary[k])
            for k in first + [k for k in summary if k not in first]}
    with open(self.metrics_path, "a") as f:
      f.write(json.dumps(line, allow_nan=False) + "\n")
    if self._tb is not None:
      step = int(summary["env_steps"])
      for name, value in summary.items():
        if name in ("chunk", "env_steps") or np.ndim(value) > 1:
          continue
        tag = name if name in _COUNTERS else f"{name}/mean_over_seeds"
        value = seed_mean(value)
        if np.isfinite(value):
          self._tb.add_scalar(tag, value, step)
      self._tb.flush()

  def read_metrics(self) -> List[Dict[str, Any]]:
    """The lines of ``metrics.jsonl`` (null -> NaN in numeric lists)."""
    with open(self.metrics_path) as f:
      return checkpoint_lib.history_from_json(
          [json.loads(line) for line in f if line.strip()])

  def write_learning_curve(self, title: str = "") -> str:
    """Plots evaluation return vs env steps (mean over seeds, min-max band)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = self.read_metrics()
    steps = np.array([line["env_steps"] for line in lines], np.float64)
    returns = np.array([np.atleast_1d(line["eval_return"]) for line in lines])
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(lines):
      ax.plot(steps, returns.mean(1), label=f"mean over {returns.shape[1]} seed(s)")
      if returns.shape[1] > 1:
        ax.fill_between(steps, returns.min(1), returns.max(1), alpha=0.25,
                        label="min-max over seeds")
      ax.legend(loc="lower right")
    ax.set_xlabel("env steps (per seed)")
    ax.set_ylabel("greedy evaluation return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(self.path, "learning_curve.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


class Progress:
  """Progress over a run: a tqdm bar on a terminal, else one log line per chunk.

  Args:
    total_env_steps: env steps per seed of the whole run.
    enabled: ``False`` shows nothing (``--quiet``).
    bar: ``None``: a bar only if stderr is a terminal.
    initial: env steps already done (a resumed run).
  """

  def __init__(self, total_env_steps: int, *, enabled: bool = True,
               bar: Optional[bool] = None, initial: int = 0):
    self.enabled = enabled
    self._bar = None
    if enabled and (bar if bar is not None else sys.stderr.isatty()):
      import tqdm
      self._bar = tqdm.tqdm(total=total_env_steps, initial=initial,
                            unit="step", unit_scale=True, dynamic_ncols=True)

  def update(self, summary: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    train, evaluation = seed_mean(summary["train_return"]), seed_mean(summary["eval_return"])
    loss = seed_mean(summary.get("loss", np.nan))
    if self._bar is not None:
      self._bar.update(int(summary["env_steps"]) - self._bar.n)
      self._bar.set_postfix_str(f"sps {summary['sps']:,.0f} | train {train:.1f} | "
                                f"eval {evaluation:.1f}")
    else:
      logger.info("env steps %9s | sps %9s | train return %7.1f | eval return "
                  "%7.1f | loss %.4f", f"{summary['env_steps']:,}",
                  f"{summary['sps']:,.0f}", train, evaluation, loss)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
