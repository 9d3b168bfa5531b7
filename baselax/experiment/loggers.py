"""Loggers: small sinks of the per-chunk :class:`~baselax.metrics.ChunkRecord`.

A logger has two methods, ``write(record)`` after every chunk and ``close()``
at the end; :class:`MultiLogger` fans one record out to many (the shape of
Stoix's logger). The experiment builds the list in :func:`make_loggers`; to
add your own, subclass :class:`Logger` and pass it to
``baselax.experiment.run(..., loggers=[MyLogger()])`` or to
``anakin.train(..., on_chunk=MultiLogger([...]).write)``: the trainer never
changes.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from baselax import metrics as metrics_lib
from baselax.experiment import rundir as rundir_lib

logger = logging.getLogger("baselax.experiment")


class Logger:
  """The logger interface: both methods are optional no-ops."""

  def write(self, record: metrics_lib.ChunkRecord) -> bool | None:
    """Takes one chunk's record; returning True asks the run to stop after
    this chunk, with a checkpoint (early stopping)."""

  def close(self) -> None:
    """Flushes and releases what the logger holds (called once, at the end)."""


class MultiLogger(Logger):
  """Writes each record to every logger; closes all of them even if one fails."""

  def __init__(self, loggers: Sequence[Logger]):
    self.loggers = list(loggers)

  def write(self, record: metrics_lib.ChunkRecord) -> bool:
    """Writes to every logger; True if any of them asks to stop."""
    stops = [bool(sink.write(record)) for sink in self.loggers]
    return any(stops)

  def close(self) -> None:
    errors = []
    for sink in self.loggers:
      try:
        sink.close()
      except Exception as error:  # close the others first, then report
        errors.append(error)
    if errors:
      raise errors[0]


class ConsoleHandler(logging.Handler):
  """A logging handler that prints through ``tqdm.write``: progress on
  stdout, warnings and errors on stderr (each looked up when written).

  With a progress bar on the terminal, a plain print lands inside the bar's
  line; ``tqdm.write`` clears the bar, prints the line and redraws the bar.
  """

  def emit(self, record: logging.LogRecord) -> None:
    try:
      import tqdm

      stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
      tqdm.tqdm.write(self.format(record), file=stream)
    except Exception:  # pragma: no cover - logging must never raise
      self.handleError(record)


def setup_logging(quiet: bool) -> None:
  """The library logs through the "baselax" loggers: progress on stdout
  (none when ``quiet``), warnings on stderr. The handler is the library's own
  rather than Python's last resort, which a test runner's capture handlers
  (pytest >= 9.2 attaches them to non-propagating loggers) would displace."""
  log = logging.getLogger("baselax")
  log.handlers = [h for h in log.handlers if not isinstance(h, ConsoleHandler)]
  log.propagate = False  # orbax installs a root handler
  handler = ConsoleHandler()
  handler.setFormatter(logging.Formatter("%(message)s"))
  log.addHandler(handler)
  log.setLevel(logging.WARNING if quiet else logging.INFO)


class ConsoleLogger(Logger):
  """Progress over a run: a tqdm bar on a terminal, else one log line per chunk.

  Args:
    total_env_steps: env steps per seed of the whole run.
    bar: ``None``: a bar only if stderr is a terminal.
    initial: env steps already done (a resumed run).
  """

  def __init__(self, total_env_steps: int, *, bar: bool | None = None, initial: int = 0):
    self._use_bar = bar if bar is not None else sys.stderr.isatty()
    self._total, self._initial = total_env_steps, initial
    self._bar: Any = None  # a tqdm bar, made at the first record

  @classmethod
  def for_run(cls, sizes: Any, chunks_done: int | None = None) -> ConsoleLogger:
    """Progress of a run of ``sizes`` (its ``total_env_steps`` and
    ``env_steps_per_chunk``), resumed after ``chunks_done`` chunks (if any)."""
    return cls(sizes.total_env_steps, initial=(chunks_done or 0) * sizes.env_steps_per_chunk)

  def write(self, record: metrics_lib.ChunkRecord) -> None:
    if not self._use_bar:
      logger.info(metrics_lib.format_record(record))
      return
    if self._bar is None:
      # Made at the first record, so its rate and ETA leave compilation out.
      import tqdm

      self._bar = tqdm.tqdm(
        total=self._total, initial=self._initial, unit="step", unit_scale=True, dynamic_ncols=True
      )
    self._bar.update(record.env_steps - self._bar.n)
    self._bar.set_postfix_str(
      f"sps {record.sps:,.0f} | train {metrics_lib.seed_mean(record.train_return):.1f}"
      f" | eval {metrics_lib.seed_mean(record.eval_return):.1f}"
    )

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()


class JsonlLogger(Logger):
  """Appends each record to a JSON-lines file (strict JSON: NaN as null)."""

  def __init__(self, path: str):
    self.path = path

  def write(self, record: metrics_lib.ChunkRecord) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(metrics_lib.record_to_json(record), allow_nan=False) + "\n")


def scalars_for_dashboards(record: metrics_lib.ChunkRecord) -> dict[str, float]:
  """``{tag: value}`` of a record for TensorBoard and W&B: counters as they
  are, per-seed metrics as their mean over seeds (finite values only)."""
  out = {
    "sps": record.sps,
    "wall_time": record.wall_time,
    "updates": metrics_lib.seed_mean(record.updates),
  }
  per_seed = {
    "train_return": record.train_return,
    "eval_return": record.eval_return,
    "train_episodes": record.train_episodes,
    **record.scalars,
  }
  out.update({f"{k}/mean_over_seeds": metrics_lib.seed_mean(v) for k, v in per_seed.items()})
  return {k: float(v) for k, v in out.items() if np.isfinite(v)}


class TensorBoardLogger(Logger):
  """TensorBoard scalars (tensorboardX), one point per chunk at its env steps.

  Raises:
    ImportError: tensorboardX is not installed (``pip install -e ".[tensorboard]"``).
  """

  def __init__(self, directory: str):
    try:
      import tensorboardX
    except ImportError as error:
      raise ImportError(
        "TensorBoard logging needs tensorboardX: pip install -e "
        "'.[tensorboard]' (or pass --no-tensorboard)."
      ) from error
    self._writer = tensorboardX.SummaryWriter(directory)

  def write(self, record: metrics_lib.ChunkRecord) -> None:
    for tag, value in scalars_for_dashboards(record).items():
      self._writer.add_scalar(tag, value, record.env_steps)
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class WandbLogger(Logger):
  """A Weights & Biases run, one point per chunk at its env steps.

  ``mode="offline"`` writes the run under ``<directory>/wandb/`` with no
  network (``wandb sync`` uploads it later). A resumed run continues the
  same W&B run: its id is kept in ``<directory>/wandb_run_id``.

  Raises:
    ImportError: wandb is not installed (``pip install -e ".[wandb]"``).
  """

  def __init__(
    self,
    directory: str,
    *,
    project: str,
    entity: str | None = None,
    mode: str = "online",
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    group: str | None = None,
  ):
    try:
      import wandb
    except ImportError as error:
      raise ImportError("W&B logging needs wandb: pip install -e '.[wandb]'.") from error
    id_path = os.path.join(directory, "wandb_run_id")
    if os.path.exists(id_path):
      with open(id_path) as f:
        run_id = f.read().strip()
    else:
      run_id = uuid.uuid4().hex[:8]
      with open(id_path, "w") as f:
        f.write(run_id)
    self._run = wandb.init(
      project=project,
      entity=entity,
      mode=mode,  # type: ignore[arg-type]
      dir=directory,  # (mode: checked by LoggersConfig)
      id=run_id,
      resume="allow",
      name=name,
      group=group,
      config=dict(config or {}),
      reinit="create_new",
    )

  def write(self, record: metrics_lib.ChunkRecord) -> None:
    values: dict[str, float] = dict(scalars_for_dashboards(record))
    values["env_steps"] = record.env_steps
    for i, value in enumerate(np.atleast_1d(record.eval_return)):
      if np.isfinite(value):
        values[f"eval_return/seed_{i}"] = float(value)
    self._run.log(values, step=record.env_steps)

  def close(self) -> None:
    self._run.finish()


class SweepLogger(Logger):
  """Splits each whole-run record of a sweep into one record per grid point.

  Args:
    points: the grid points' ``{setting: value}``, in run order.
    shared: sinks that get every point's record in turn (``metrics.jsonl``:
      one row per chunk and point, with ``point`` and ``hyperparams``).
    per_point: ``per_point[p]``: sinks of point ``p`` alone (a TensorBoard
      or W&B run per point).
  """

  def __init__(
    self,
    points: Sequence[Mapping[str, Any]],
    shared: Sequence[Logger] = (),
    per_point: Sequence[Sequence[Logger]] = (),
  ):
    self.points = list(points)
    self.shared = MultiLogger(shared)
    self.per_point = [MultiLogger(sinks) for sinks in per_point]

  def write(self, record: metrics_lib.ChunkRecord) -> bool:
    from baselax.experiment import sweeps

    stop = False
    for p, point_record in enumerate(sweeps.point_records(record, self.points)):
      stop |= self.shared.write(point_record)
      if self.per_point:
        stop |= self.per_point[p].write(point_record)
    return stop

  def close(self) -> None:
    MultiLogger([self.shared, *self.per_point]).close()


class LearningCurveLogger(Logger):
  """Draws ``learning_curve.png`` from the run's ``metrics.jsonl`` when closed."""

  def __init__(self, run_dir: rundir_lib.RunDirectory, title: str):
    self.run_dir, self.title = run_dir, title

  def close(self) -> None:
    if os.path.exists(self.run_dir.metrics_path):
      self.run_dir.write_learning_curve(self.title)


def make_loggers(
  run_dir: rundir_lib.RunDirectory | None,
  loggers_config: Any,
  *,
  console: ConsoleLogger | None,
  title: str,
  config: Mapping[str, Any],
  extra: Sequence[Logger] = (),
  points: Sequence[Mapping[str, Any]] | None = None,
) -> MultiLogger:
  """The loggers of an experiment (``run_dir`` is ``None`` on processes other than 0).

  TensorBoard is on when asked and tensorboardX is installed (a missing
  optional package is said once, not fatal); W&B when a project is given.
  With sweep ``points``, ``metrics.jsonl`` gets a row per chunk and point,
  and each point gets its own TensorBoard and W&B run under
  ``points/<setting=value,...>/`` (W&B: grouped by the run directory's name);
  the console and ``extra`` loggers get the whole run's records.
  """
  sinks: list[Logger] = [console] if console is not None else []
  if run_dir is not None:
    name = os.path.basename(run_dir.path)

    def dashboards(
      directory: str, label: str | None = None, hyperparams: Mapping[str, Any] | None = None
    ) -> list[Logger]:
      out: list[Logger] = []
      if loggers_config.tensorboard:
        try:
          out.append(TensorBoardLogger(directory))
        except ImportError:
          logger.info("tensorboardX is not installed: no TensorBoard event files.")
      if loggers_config.wandb_project is not None:
        os.makedirs(directory, exist_ok=True)
        out.append(
          WandbLogger(
            directory,
            project=loggers_config.wandb_project,
            entity=loggers_config.wandb_entity,
            mode=loggers_config.wandb_mode,
            name=f"{name}/{label}" if label else name,
            group=name if label else None,
            config={**config, **({"point": dict(hyperparams)} if hyperparams else {})},
          )
        )
      return out

    jsonl = JsonlLogger(run_dir.metrics_path)
    curve = LearningCurveLogger(run_dir, title)
    if points is None:
      sinks += [jsonl, curve, *dashboards(run_dir.path)]
    else:
      from baselax.experiment import sweeps

      labels = [sweeps.label(h) for h in points]
      sinks += [
        SweepLogger(
          points,
          shared=[jsonl],
          per_point=[
            dashboards(os.path.join(run_dir.path, "points", label), label, h)
            for label, h in zip(labels, points, strict=True)
          ],
        ),
        curve,
      ]
  return MultiLogger([*sinks, *extra])
