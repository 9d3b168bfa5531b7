"""A run's directory: where everything about one experiment is written.

::

    runs/<env>-<agent>-<timestamp>/
      config.json          the resolved configuration of the run
      metrics.jsonl        one JSON line per chunk (a ChunkRecord; NaN written as null)
      events.out.tfevents.*  TensorBoard scalars (loggers.TensorBoardLogger)
      wandb/               an offline Weights & Biases run (loggers.WandbLogger)
      learning_curve.png   evaluation return vs env steps, mean and band over seeds
      checkpoints/         orbax checkpoints (baselax.training.checkpoint)
      run.lock             while a run writes here: its pid and host, refreshed (runlock.py)
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from baselax import metrics as metrics_lib
from baselax.agents import registry
from baselax.errors import ConfigError
from baselax.experiment.runlock import RunLock
from baselax.training import config as training_config

logger = logging.getLogger("baselax.experiment")


def default_run_dir(env_id: str, agent_name: str, root: str = "runs") -> str:
  """``runs/<env>-<agent>-<YYYYmmdd-HHMMSS>``."""
  stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
  safe_env = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in env_id)
  return os.path.join(root, f"{safe_env}-{agent_name.lower()}-{stamp}")


def checkpoint_dir(run_path: str) -> str:
  """Where a run directory keeps its checkpoints: ``<run_path>/checkpoints``."""
  return os.path.join(run_path, "checkpoints")


def load_config(run_path: str) -> dict[str, Any]:
  """The ``config.json`` of a run directory.

  Runs written before the agent registry kept ``env_id`` in the agent
  section and had no ``experiment`` section; they read as DQN runs.

  Raises:
    ConfigError: ``run_path`` is not a run directory.
  """
  path = os.path.join(run_path, "config.json")
  if not os.path.isfile(path):
    raise ConfigError(
      f"{run_path} is not a run directory (no config.json): pass "
      f"the directory a run printed at its end."
    )
  try:
    with open(path) as f:
      saved = json.load(f)
  except ValueError as error:
    raise ConfigError(f"{path} is not valid JSON ({error}).") from error
  missing = [k for k in ("agent", "trainer") if k not in saved]
  if missing:
    raise ConfigError(
      f"{path} is not a baselax run's config.json (no {' or '.join(missing)} section)."
    )
  if "experiment" not in saved:
    agent = dict(saved.get("agent", {}))
    saved["experiment"] = {"agent": "dqn", "env_id": agent.pop("env_id", "CartPole-v1")}
    saved["agent"] = agent
  # Settings renamed since the run was written (prioritized -> sampling,
  # huber -> huber_delta) are read under their new names.
  saved["trainer"] = training_config.migrate(saved["trainer"])
  renamed, introduced = agent_changes(saved["experiment"]["agent"])
  saved["agent"] = training_config.migrate(saved["agent"], renamed, introduced=introduced)
  return saved


def agent_changes(agent: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
  """The registered agent's config's ``(RENAMED, INTRODUCED)`` settings (none
  for an unknown agent)."""
  try:
    cls = registry.get(agent).config_cls
  except ConfigError:
    return {}, {}
  return getattr(cls, "RENAMED", {}), getattr(cls, "INTRODUCED", {})


def fingerprint_changes(agent: str) -> dict[str, Any]:
  """The agent's renamed and introduced settings as checkpoint fingerprint
  keys (``meta.agent.<name>``), for :class:`~baselax.training.Checkpointer`."""
  renamed, introduced = agent_changes(agent)
  return {
    "renamed": {
      f"meta.agent.{old}": (f"meta.agent.{new}", convert) for old, (new, convert) in renamed.items()
    },
    "introduced": {f"meta.agent.{k}": v for k, v in introduced.items()},
  }


#: Run settings that say where a session goes, not how the run is run.
SESSION_ONLY = ("run_dir", "resume")


def resume_defaults(saved: dict[str, Any], sections: Any) -> dict[str, Any]:
  """The flag defaults of ``--resume``: every saved setting of the
  experiment ``sections``, the loggers (a W&B run goes on in the same W&B
  run) and the run section (its checkpoint cadence, compilation cache, ...),
  but where the run goes. Flags given again override them; the experiment's
  may not change (checked by the caller)."""
  defaults = {k: v for section in (*sections, "loggers") for k, v in saved.get(section, {}).items()}
  defaults.update({k: v for k, v in saved.get("run", {}).items() if k not in SESSION_ONLY})
  return defaults


def write_atomically(path: str, text: str | bytes) -> None:
  """Writes ``text`` (or bytes) to ``path`` through a temporary file and a
  rename, so a process killed meanwhile leaves the old file or the new one,
  never half."""
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "wb" if isinstance(text, bytes) else "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def complete_lines(path: str) -> list[tuple[str, dict[str, Any]]]:
  """``(line, parsed)`` of every JSON line of ``path``; a line cut short by
  a killed writer (the last one: it does not parse, or lacks its newline)
  is left out."""
  if not os.path.exists(path):
    return []
  out = []
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except ValueError:
        continue
      if line.endswith("\n"):
        out.append((line, row))
  return out


def metrics_rows(run_dir: str) -> list[dict[str, Any]]:
  """The whole lines of ``run_dir``'s ``metrics.jsonl``, parsed (a line cut
  short by a killed run left out; ``[]`` before the first chunk)."""
  return [row for _, row in complete_lines(os.path.join(run_dir, "metrics.jsonl"))]


class RunDirectory:
  """Writes one run's ``config.json`` and keeps ``metrics.jsonl`` consistent.

  Args:
    path: the directory (created if needed).
    config: the resolved, JSON-able configuration; written to ``config.json``
      (a resumed run keeps the one already there).
    resume_from_chunk: continuing a run that had done this many chunks: lines
      of ``metrics.jsonl`` for later chunks (written after the checkpoint),
      and a line cut short by a kill, are dropped, so the file holds each
      chunk once (0: a run that starts afresh in its own directory).
    lock: the directory's :class:`RunLock`, released by :meth:`close`.
  """

  def __init__(
    self,
    path: str,
    config: Mapping[str, Any],
    *,
    resume_from_chunk: int | None = None,
    lock: RunLock | None = None,
  ):
    self.path = os.path.abspath(os.path.expanduser(path))
    self.lock = lock
    os.makedirs(self.path, exist_ok=True)
    self.metrics_path = os.path.join(self.path, "metrics.jsonl")
    self.config_path = os.path.join(self.path, "config.json")
    if resume_from_chunk is None or not os.path.exists(self.config_path):
      write_atomically(
        self.config_path, json.dumps(metrics_lib.to_json(dict(config)), indent=2, sort_keys=True)
      )
    if resume_from_chunk is not None and os.path.exists(self.metrics_path):
      kept = [
        line for line, row in complete_lines(self.metrics_path) if row["chunk"] < resume_from_chunk
      ]
      write_atomically(self.metrics_path, "".join(kept))

  @property
  def checkpoint_dir(self) -> str:
    return checkpoint_dir(self.path)

  def close(self) -> None:
    """Releases the directory's lock (if it holds one)."""
    if self.lock is not None:
      self.lock.release()

  def read_metrics(self) -> list[metrics_lib.ChunkRecord]:
    """The records of ``metrics.jsonl`` (null -> NaN)."""
    return [metrics_lib.record_from_json(row) for _, row in complete_lines(self.metrics_path)]

  def write_learning_curve(self, title: str = "") -> str:
    """Plots evaluation return vs env steps (mean over seeds, min-max band);
    a sweep gets one curve (and band) per grid point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = self.read_metrics()
    curves: dict[Any, list[metrics_lib.ChunkRecord]] = {}
    for record in records:
      curves.setdefault(record.point, []).append(record)
    fig, ax = plt.subplots(figsize=(7, 4.5) if len(curves) > 1 else (6, 4))
    for point, rows in curves.items():
      steps = np.array([r.env_steps for r in rows], np.float64)
      returns = np.array([np.atleast_1d(r.eval_return) for r in rows])
      seeds = f"mean over {returns.shape[1]} seed(s)"
      name = (
        seeds
        if point is None
        else f"{point}: " + ",".join(f"{k}={v:g}" for k, v in (rows[0].hyperparams or {}).items())
      )
      (line,) = ax.plot(steps, returns.mean(1), label=name)
      if returns.shape[1] > 1:
        ax.fill_between(
          steps,
          returns.min(1),
          returns.max(1),
          alpha=0.25 if point is None else 0.1,
          color=line.get_color(),
          label="min-max over seeds" if point is None else None,
        )
    if records:
      ax.legend(
        loc="lower right",
        fontsize="small" if len(curves) > 1 else None,
        title=f"point ({seeds})" if len(curves) > 1 else None,
      )
    ax.set_xlabel("env steps (per seed)")
    ax.set_ylabel("greedy evaluation return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(self.path, "learning_curve.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def checkpoint_every_chunks(spec: Any, sizes: Any) -> int:
  """Chunks between checkpoints: ``--checkpoint-every`` env steps, in whole chunks."""
  return max(1, round(spec.run.checkpoint_every / sizes.env_steps_per_chunk))


def open_run(spec: Any, prepared: Any, extra: dict[str, Any] | None = None):
  """The run directory and checkpointer (process 0 only); refuses a clash.

  ``spec``/``prepared``: ``baselax.experiment.launch``'s, or another
  trainer's with the same fields (``baselax.atari``: ``prepared.num_devices``
  may be absent, 1).
  ``extra``: more entries for ``config.json``.

  Returns ``(run_dir, checkpointer, chunks_done)``, ``chunks_done`` being the
  newest checkpoint's when resuming, else None (also when the run to resume
  was stopped before its first checkpoint: it starts afresh). ``run_dir``
  holds the directory's lock until ``run_dir.close()``.

  Raises:
    ConfigError: another live process writes to the directory, or a fresh
      run's directory already holds a checkpoint.
  """
  import jax

  from baselax.training import checkpoint

  resuming = spec.run.resume is not None
  run_path = (
    spec.run.resume
    or spec.run.run_dir
    or default_run_dir(spec.experiment.env_id, spec.experiment.agent)
  )
  os.makedirs(run_path, exist_ok=True)
  lock = RunLock(run_path)
  lock.acquire()  # one writer: refuses a directory a live run holds
  try:
    checkpointer = checkpoint.Checkpointer(
      checkpoint_dir(run_path),
      every_chunks=checkpoint_every_chunks(spec, prepared.sizes),
      writer=True,  # the lock's holder: a killed writer's unfinished saves go
      **fingerprint_changes(spec.experiment.agent),
    )
    # Resuming: the newest intact checkpoint (damaged ones are set aside).
    try:
      chunks_done = checkpointer.intact_step() if resuming else checkpointer.latest_step()
    except ConfigError as error:
      checkpointer.close()
      raise ConfigError(f"--resume {run_path}: {error}") from error
    if not resuming and chunks_done is not None:
      checkpointer.close()
      raise ConfigError(
        f"run_dir {run_path} already holds a run: continue it with "
        f"--resume {run_path}, or pick another --run-dir."
      )
    if resuming and chunks_done is None:
      # Stopped before its first checkpoint: the recorded configuration (the
      # flags' defaults, parse) starts again from the beginning.
      print(
        f"{run_path} has no checkpoint yet: starting it afresh from its recorded configuration.",
        flush=True,
      )
    entry = registry.get(spec.experiment.agent)
    config: dict[str, Any] = {name: dataclasses.asdict(c) for name, c in spec.sections.items()}
    config.update(
      agent_class=type(prepared.agent).__name__,
      agent_module=entry.module,
      num_devices=getattr(prepared, "num_devices", 1),
      num_processes=jax.process_count(),
      jax=jax.__version__,
      backend=jax.default_backend(),
      device_kind=jax.devices()[0].device_kind,
      **(extra or {}),
    )
    run_dir = RunDirectory(
      run_path, config, resume_from_chunk=(chunks_done or 0) if resuming else None, lock=lock
    )
  except BaseException:
    lock.release()
    raise
  return run_dir, checkpointer, chunks_done
