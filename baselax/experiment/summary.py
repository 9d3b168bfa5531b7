"""The end of a run: what :func:`baselax.experiment.run` returns and prints."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from baselax import metrics as metrics_lib
from baselax.experiment import aggregate as aggregate_lib
from baselax.experiment import cli, sweeps


@dataclasses.dataclass
class ExperimentResult:
  """What :func:`run` returns.

  Attributes:
    eval_return: ``(seeds,)`` final greedy evaluation return.
    sps: env steps per second of this session, all seeds.
    env_steps: env steps per seed done in this session.
    wall_time: seconds of this session, start-up included.
    run_dir: the run directory (``None`` on processes other than 0).
    interrupted: stopped before the end (Ctrl-C, SIGTERM or ``on_chunk``); resumable.
    result: the trainer's :class:`~baselax.anakin.runner.TrainResult`.
    aggregate: the final returns over seeds (``aggregate.summarise_final_returns``:
      IQM with its 95% bootstrap CI, mean, std, range), also in ``summary.json``;
      for a sweep, that of every grid point and the best point
      (``sweeps.summarise_points``).
  """

  eval_return: Any
  sps: float
  env_steps: int
  wall_time: float
  run_dir: str | None
  interrupted: bool
  result: Any
  aggregate: dict[str, Any]


def summarise(
  result: Any,
  env_steps_per_chunk: int,
  num_seeds: int,
  run_dir: Any,
  wall: float,
  points: list[dict[str, Any]] | None = None,
) -> ExperimentResult:
  """This session's figures: a resumed run counts only the chunks it ran.

  Args:
    result: the trainer's ``TrainResult``.
    env_steps_per_chunk: env steps per seed of one chunk.
    num_seeds: runs trained in one program (seeds x sweep points).
    run_dir: the ``RunDirectory`` (``None`` on processes other than 0).
    wall: seconds of this session.
    points: a sweep's grid points (``{setting: value}``), in run order.
  """
  history: list[metrics_lib.ChunkRecord] = result.history
  ran = history[result.first_chunk :]
  before = history[result.first_chunk - 1].wall_time if result.first_chunk else 0.0
  run_time = (ran[-1].wall_time - before) if ran else 0.0
  steps = len(ran) * env_steps_per_chunk
  if points:
    aggregate = sweeps.summarise_points(history[-1].eval_return, points)
    if run_dir is not None:
      sweeps.write(run_dir.path, aggregate)
  else:
    aggregate = aggregate_lib.summarise_final_returns(history[-1].eval_return)
    if run_dir is not None:
      aggregate_lib.write_summary(run_dir.path, aggregate)
  return ExperimentResult(
    eval_return=history[-1].eval_return,
    env_steps=steps,
    wall_time=wall,
    sps=steps * num_seeds / run_time if run_time > 0 else float("nan"),
    run_dir=run_dir.path if run_dir else None,
    interrupted=result.stopped_early,
    result=result,
    aggregate=aggregate,
  )


def print_summary(out: ExperimentResult, prog: str) -> None:
  """The lines after ``---``: final returns, speed and where the run is."""
  result = out.result
  num_seeds = result.derived.num_runs
  final = np.asarray(out.eval_return)
  print("---")
  if out.interrupted:
    print(
      f"stopped after {result.history[-1].env_steps:,} env steps; checkpoint "
      f"saved. Continue with:\n  {cli.invocation(prog)} --resume {out.run_dir}"
    )
  episodes = result.history[-1].eval_returns.shape[-1]
  if "points" in out.aggregate:
    print(
      f"final greedy eval return per sweep point ({result.config.num_seeds} seed(s) "
      f"x {episodes} episodes each):"
    )
    print(sweeps.table(out.aggregate))
    print(sweeps.describe_best(out.aggregate))
  else:
    print(
      f"final greedy eval return per seed ({episodes} episodes each): "
      f"{np.array2string(final, precision=1)}  mean {final.mean():.1f}"
    )
    if out.aggregate["seeds"] > 1:
      print(f"final greedy eval return over {aggregate_lib.describe(out.aggregate)}")
  recent = result.history[-1].recent_return
  if recent is not None and "points" not in out.aggregate:
    print(
      f"training return of the last 100 episodes per seed: "
      f"{np.array2string(np.asarray(recent), precision=1)}"
    )
  resumed = (
    f" (resumed at chunk {result.first_chunk}: {out.env_steps:,} env steps "
    f"per seed in this session)"
    if result.first_chunk
    else ""
  )
  run_time = out.env_steps * num_seeds / out.sps if out.sps > 0 else 0.0
  runs = "runs" if "points" in out.aggregate else "seeds"
  print(
    f"env steps per second: {out.sps:,.0f} (all {runs}){resumed} | compile "
    f"{result.metrics['compile_time']:.1f}s | run {run_time:.1f}s | total wall "
    f"{out.wall_time:.1f}s"
  )
  print(f"run directory: {out.run_dir}")
