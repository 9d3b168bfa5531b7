"""A run's directory: where everything about one experiment is written.

::

    runs/<env>-<agent>-<timestamp>/
      config.json          the resolved configuration of the run
      metrics.jsonl        one JSON line per chunk (a ChunkRecord; NaN written as null)
      events.out.tfevents.*  TensorBoard scalars (loggers.TensorBoardLogger)
      wandb/               an offline Weights & Biases run (loggers.WandbLogger)
      learning_curve.png   evaluation return vs env steps, mean and band over seeds
      checkpoints/         orbax checkpoints (baselax.anakin.checkpoint)
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from baselax import metrics as metrics_lib
from baselax.errors import ConfigError


def default_run_dir(env_id: str, agent_name: str, root: str = "runs") -> str:
  """``runs/<env>-<agent>-<YYYYmmdd-HHMMSS>``."""
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  safe_env = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in env_id)
  return os.path.join(root, f"{safe_env}-{agent_name.lower()}-{stamp}")


def checkpoint_dir(run_path: str) -> str:
  """Where a run directory keeps its checkpoints: ``<run_path>/checkpoints``."""
  return os.path.join(run_path, "checkpoints")


def load_config(run_path: str) -> Dict[str, Any]:
  """The ``config.json`` of a run directory.

  Runs written before the agent registry kept ``env_id`` in the agent
  section and had no ``experiment`` section; they read as DQN runs.

  Raises:
    ConfigError: ``run_path`` is not a run directory.
  """
  path = os.path.join(run_path, "config.json")
  if not os.path.isfile(path):
    raise ConfigError(f"{run_path} is not a run directory (no config.json): pass "
                      f"the directory a run printed at its end.")
  try:
    with open(path) as f:
      saved = json.load(f)
  except ValueError as error:
    raise ConfigError(f"{path} is not valid JSON ({error}).") from error
  missing = [k for k in ("agent", "trainer") if k not in saved]
  if missing:
    raise ConfigError(f"{path} is not a baselax run's config.json (no "
                      f"{' or '.join(missing)} section).")
  if "experiment" not in saved:
    agent = dict(saved.get("agent", {}))
    saved["experiment"] = {"agent": "dqn", "env_id": agent.pop("env_id", "CartPole-v1")}
    saved["agent"] = agent
  return saved


class RunDirectory:
  """Writes one run's ``config.json`` and keeps ``metrics.jsonl`` consistent.

  Args:
    path: the directory (created if needed).
    config: the resolved, JSON-able configuration; written to ``config.json``
      (a resumed run keeps the one already there).
    resume_from_chunk: continuing a run that had done this many chunks: lines
      of ``metrics.jsonl`` for later chunks (written after the checkpoint)
      are dropped, so the file holds each chunk once.
  """

  def __init__(self, path: str, config: Mapping[str, Any], *,
               resume_from_chunk: Optional[int] = None):
    self.path = os.path.abspath(os.path.expanduser(path))
    os.makedirs(self.path, exist_ok=True)
    self.metrics_path = os.path.join(self.path, "metrics.jsonl")
    self.config_path = os.path.join(self.path, "config.json")
    if resume_from_chunk is None or not os.path.exists(self.config_path):
      with open(self.config_path, "w") as f:
        json.dump(metrics_lib.to_json(dict(config)), f, indent=2, sort_keys=True)
    if resume_from_chunk is not None and os.path.exists(self.metrics_path):
      with open(self.metrics_path) as f:
        kept = [line for line in f
                if line.strip() and json.loads(line)["chunk"] < resume_from_chunk]
      with open(self.metrics_path, "w") as f:
        f.writelines(kept)

  @property
  def checkpoint_dir(self) -> str:
    return checkpoint_dir(self.path)

  def read_metrics(self) -> List[metrics_lib.ChunkRecord]:
    """The records of ``metrics.jsonl`` (null -> NaN)."""
    if not os.path.exists(self.metrics_path):
      return []
    with open(self.metrics_path) as f:
      return [metrics_lib.record_from_json(json.loads(line)) for line in f if line.strip()]

  def write_learning_curve(self, title: str = "") -> str:
    """Plots evaluation return vs env steps (mean over seeds, min-max band);
    a sweep gets one curve (and band) per grid point."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = self.read_metrics()
    curves: Dict[Any, List[metrics_lib.ChunkRecord]] = {}
    for record in records:
      curves.setdefault(record.point, []).append(record)
    fig, ax = plt.subplots(figsize=(7, 4.5) if len(curves) > 1 else (6, 4))
    for point, rows in curves.items():
      steps = np.array([r.env_steps for r in rows], np.float64)
      returns = np.array([np.atleast_1d(r.eval_return) for r in rows])
      seeds = f"mean over {returns.shape[1]} seed(s)"
      name = seeds if point is None else f"{point}: " + ",".join(
          f"{k}={v:g}" for k, v in (rows[0].hyperparams or {}).items())
      line, = ax.plot(steps, returns.mean(1), label=name)
      if returns.shape[1] > 1:
        ax.fill_between(steps, returns.min(1), returns.max(1), alpha=0.25 if point is None
                        else 0.1, color=line.get_color(),
                        label="min-max over seeds" if point is None else None)
    if records:
      ax.legend(loc="lower right", fontsize="small" if len(curves) > 1 else None,
                title=f"point ({seeds})" if len(curves) > 1 else None)
    ax.set_xlabel("env steps (per seed)")
    ax.set_ylabel("greedy evaluation return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(self.path, "learning_curve.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
