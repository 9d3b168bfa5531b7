"""``train``: the runner users call. Chunks, checkpoints, resume, stop requests.

The run is ``derived.num_chunks`` compiled chunks of ``eval_every`` env steps
(``program.py`` maps them over devices and seeds), each followed by a greedy
evaluation on device; between chunks the host only reads the chunk's metrics,
reduces them to a :class:`~baselax.metrics.ChunkRecord` and hands it to
``on_chunk``. The guards (Ctrl-C, non-finite values, resume refusals) are in
``guards.py``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from baselax import metrics as metrics_lib
from baselax.agents import base as agent_base
from baselax.anakin import distributed
from baselax.anakin import program as program_lib
from baselax.anakin import sweep as sweep_lib
from baselax.anakin.config import AnakinConfig
from baselax.metrics import TrainResult  # noqa: F401  (re-exported as anakin.TrainResult)
from baselax.replay import memory as memory_lib
from baselax.training import checkpoint as checkpoint_lib
from baselax.training import driver
from baselax.training import shards as shards_lib

logger = logging.getLogger("baselax.anakin")

#: ``on_chunk(record)``; returning True stops the run after that chunk.
ChunkCallback = Callable[[metrics_lib.ChunkRecord], bool | None]

#: Per-chunk device metrics that are bookkeeping, not OptimOutput scalars.
_LOOP_METRICS = (
  "episodes",
  "episode_return_sum",
  "updates",
  "eval_returns",
  "params_finite",
  "recent_return_sum",
  "recent_episodes",
)


def nonfinite_names(raw: Mapping[str, np.ndarray]) -> list[str]:
  """Names of the chunk's device metrics that are not finite.

  Sums over the chunk are finite unless some step was not: zeros are summed
  before learning starts, so NaN here means a NaN loss or scalar.
  """
  bad = [
    name
    for name, value in raw.items()
    if name != "params_finite" and not np.all(np.isfinite(value))
  ]
  if not np.all(raw.get("params_finite", 1.0)):
    bad.append("params")
  return bad


def chunk_record(
  raw: Mapping[str, np.ndarray], group_size: int, **counters: Any
) -> metrics_lib.ChunkRecord:
  """Reduces one chunk's ``(devices, runs per device, ...)`` device metrics to a record.

  The devices form groups of ``group_size`` (``Derived.seed_devices``: all
  of them in the data layout, one in the seeds layout). Each device of a
  group holds a share of each of the group's runs' envs (summed over the
  group); the groups hold their runs end to end.
  """

  def by_group(x):  # (D, S_g, ...) -> (G, k, S_g, ...)
    return x.reshape(-1, group_size, *x.shape[1:])

  def runs(x):  # (G, S_g, ...) -> (G * S_g, ...)
    return x.reshape(-1, *x.shape[2:])

  eval_returns = np.moveaxis(by_group(raw["eval_returns"]), 1, 2)  # (G, S_g, k, E)
  return metrics_lib.ChunkRecord.from_sums(
    episode_return_sum=runs(by_group(raw["episode_return_sum"]).sum(1)),
    episodes=runs(by_group(raw["episodes"]).sum(1)),
    recent_return_sum=runs(by_group(raw["recent_return_sum"]).sum(1)),
    recent_episodes=runs(by_group(raw["recent_episodes"]).sum(1)),
    updates=runs(by_group(raw["updates"])[:, 0]),  # identical within a group
    # Reported scalars are pmean-ed by the agent; the group mean also
    # covers agents that report per-device values.
    scalar_sums={k: runs(by_group(v).mean(1)) for k, v in raw.items() if k not in _LOOP_METRICS},
    eval_returns=eval_returns.reshape(-1, np.prod(eval_returns.shape[2:], dtype=int)),
    **counters,
  )


def check_processes_agree(
  agent: agent_base.BaseAgent,
  env: Any,
  config: AnakinConfig,
  identity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
  """Refuses to go on unless every process runs the same experiment; returns
  its identity (``checkpoint.run_identity``). A no-op with one process.

  Processes that differ would deadlock in their collectives or silently
  average the gradients of different models.
  """
  run_identity = checkpoint_lib.run_identity(config, agent, env, identity)
  distributed.check_same_everywhere(
    "command lines (trainer configs, agents or their settings)", run_identity
  )
  return run_identity


def check_replay_memory(agent: Any, env: Any, config: AnakinConfig, program: Any) -> None:
  """Logs the replay buffers of every run on every local device, and refuses
  them before compiling if they cannot fit (``baselax.replay.memory``)."""
  replay_memory = memory_lib.plan(
    agent, env, config, program.derived, local_devices=program.local_devices
  )
  logger.info(replay_memory.line())
  replay_memory.check()


def run_fingerprint(run_identity: dict[str, Any], num_devices: int) -> dict[str, Any]:
  """What a checkpoint must match: the run, its device and process counts."""
  return {**run_identity, "num_devices": num_devices, "num_processes": jax.process_count()}


def resumer(
  checkpointer: Any, shards: Any, fingerprint: dict[str, Any], derived: Any
) -> Callable[[Any], tuple[Any, int, list[metrics_lib.ChunkRecord]]] | None:
  """Checks, before compiling, what a resume continues from; returns
  ``restore(state) -> (state, chunks done, history)`` (``None``: a
  multi-process run with no checkpoint yet starts afresh).

  A single process restores its checkpointer's newest intact checkpoint;
  a multi-process run every process's shards at :func:`resume_step`.
  """
  if jax.process_count() == 1:
    checkpointer.intact_step()  # the newest intact checkpoint is the one restored
    checkpointer.check_fingerprint(fingerprint)
    return lambda state: restore(checkpointer, state, fingerprint, derived)
  step = resume_step(shards, checkpointer, fingerprint)
  if step is None:
    return None

  def from_shards(state: Any) -> tuple[Any, int, list[metrics_lib.ChunkRecord]]:
    state, saved = shards.load(step, state, fingerprint)
    logger.info("resumed from %s at chunk %d", shards.directory, step)
    return state, step, [metrics_lib.record_from_json(h) for h in saved]

  return from_shards


def resume_step(shards: Any, checkpointer: Any, fingerprint: dict[str, Any]) -> int | None:
  """The step a multi-process run resumes from: the newest every process
  holds whole (a collective; ``None``: no process holds any, a fresh start).
  Refused on every process at once, before compiling, if the newest shard
  of a process is of another run (another process or device count names
  both counts), or if only process 0's params-only checkpoints exist.

  Raises:
    ConfigError: on every process, naming why (the process that found it).
  """
  intact = shards.intact_steps()
  error = shards.check(intact[-1], fingerprint) if intact else None
  params_only = not intact and checkpointer is not None and checkpointer.latest_step() is not None
  if error is None and params_only:
    error = (
      f"{checkpointer.directory} holds the params of this multi-process run only "
      f"(written before whole multi-process checkpoints): it can be evaluated, not resumed."
    )
  metrics_step = checkpointer.intact_step() if checkpointer is not None else None
  if checkpointer is not None:
    # Process 0's run directory keeps the metrics of its newest intact orbax
    # checkpoint (written after every process's shards): only such steps count.
    intact = [s for s in intact if metrics_step is not None and s <= metrics_step]
  distributed.refuse_together(error)
  # The same gathered lists everywhere: every process returns (or refuses) alike.
  step = shards_lib.common_step(intact, distributed.all_gather)
  distributed.refuse_together(
    None
    if checkpointer is None or step == metrics_step
    else f"the newest step every process holds whole is {step}, but process 0's metrics "
    f"run to step {metrics_step} (a process's newer shard is damaged or missing): restore "
    f"it, or start a new run."
  )
  return step


def restore(checkpointer: checkpoint_lib.Checkpointer, state: Any, fingerprint: Any, derived: Any):
  """``(state, chunks done, history)`` from the newest checkpoint, each array
  placed as ``state``'s (its devices and sharding)."""
  restored = checkpointer.restore(state, fingerprint)
  state = jax.tree.map(lambda like, x: jax.device_put(x, like.sharding), state, restored.state)
  logger.info(
    "resumed from %s at chunk %d of %d",
    checkpointer.directory,
    restored.chunks_done,
    derived.num_chunks,
  )
  return state, restored.chunks_done, list(restored.history)


class Training:
  """What a run's chunks advance: the state on the devices, and the records."""

  def __init__(
    self, program: Any, compiled: Callable, state: Any, history: list[metrics_lib.ChunkRecord]
  ):
    self.program, self.compiled, self.state, self.history = program, compiled, state, history
    self.started = time.perf_counter()
    self.wall_offset = history[-1].wall_time if history else 0.0

  def run_chunk(self, c: int):
    """Trains chunk ``c``; ``(record, names of non-finite values)``."""
    derived = self.program.derived
    t0 = time.perf_counter()
    self.state, raw = self.compiled(self.state, jnp.int32(c * derived.steps_per_chunk))
    # Every device holds all devices' metrics: read this process's first.
    # (Blocks until the chunk is done.)
    raw = jax.tree.map(lambda x: np.asarray(x.addressable_data(0))[0], raw)
    elapsed = time.perf_counter() - t0
    record = chunk_record(
      raw,
      derived.seed_devices,
      chunk=c,
      env_steps=(c + 1) * derived.env_steps_per_chunk,
      wall_time=self.wall_offset + time.perf_counter() - self.started,
      sps=derived.env_steps_per_chunk * derived.num_runs / elapsed,
    )
    return record, nonfinite_names(raw)

  def save(
    self, checkpointer: Any, shards: Any, fingerprint: Any, multi_process: bool, chunks_done: int
  ) -> None:
    """The checkpoint at ``chunks_done``: the whole state in process 0's
    orbax checkpoint, or in a multi-process run every process's shards
    (``baselax.training.shards``), then process 0's params and metrics."""
    if multi_process and shards is not None:
      history = [metrics_lib.record_to_json(r) for r in self.history]
      shards.save(chunks_done, self.state, history, fingerprint)
      # Every process's shards are written before process 0 commits the step.
      distributed.any_process(False)
    if checkpointer is not None:
      checkpointer.save(
        chunks_done,
        self.state,
        self.history,
        fingerprint,
        params=self.program.params_per_seed(self.state.params),
        include_state=not multi_process,
      )

  def drive(
    self,
    first_chunk: int,
    checkpointer: Any,
    shards: Any,
    fingerprint: Any,
    on_chunk: ChunkCallback | None,
  ) -> bool:
    """Runs the chunks from ``first_chunk`` on; whether it stopped early."""
    multi_process = jax.process_count() > 1
    # Every process of a multi-process run turns Ctrl-C into a request and takes
    # the same decision, or the others would wait in the next chunk's collectives.
    return driver.drive(
      range(first_chunk, self.program.derived.num_chunks),
      self.run_chunk,
      self.program.derived,
      history=self.history,
      # Every process saves at the same chunks: a shard store keeps the cadence too.
      checkpointer=checkpointer if checkpointer is not None else shards,
      on_chunk=on_chunk,
      log=logger.info,
      save=functools.partial(self.save, checkpointer, shards, fingerprint, multi_process),
      stop_enabled=checkpointer is not None or multi_process,
      agree=distributed.any_process,
    )

  def result(
    self, config: AnakinConfig, first_chunk: int, stopped_early: bool, times: dict[str, float]
  ) -> TrainResult:
    """The run's :class:`TrainResult`; ``times``: its compile and total time."""
    metrics = metrics_lib.stack_history(self.history)
    metrics.update(times)
    return metrics_lib.TrainResult(
      params=self.program.params_per_seed(self.state.params),
      state=self.state,
      metrics=metrics,
      history=self.history,
      config=config,
      derived=self.program.derived,
      stopped_early=stopped_early,
      first_chunk=first_chunk,
    )


def with_sweep(
  identity: Mapping[str, Any] | None, sweep: sweep_lib.Sweep | None
) -> Mapping[str, Any] | None:
  """``identity`` with the sweep's points (a sweep of other points is another run)."""
  if sweep is None:
    return identity
  sweep.check_points()
  return {**(identity or {}), "sweep": {k: np.asarray(v).tolist() for k, v in sweep.values.items()}}


def train(
  agent: agent_base.BaseAgent,
  env: Any,
  config: AnakinConfig,
  *,
  on_chunk: ChunkCallback | None = None,
  checkpointer: checkpoint_lib.Checkpointer | None = None,
  resume: bool = False,
  identity: Mapping[str, Any] | None = None,
  sweep: sweep_lib.Sweep | None = None,
  shards: shards_lib.ShardStore | None = None,
) -> TrainResult:
  """Trains ``agent`` on ``env`` with the Anakin architecture.

  Args:
    agent: any ``BaseAgent`` whose contract covers what ``config`` asks
      (``baselax.learner.contract``; checked before compiling).
    env: any :class:`~baselax.envs.JaxEnv` (``baselax.envs.make(...)``, a
      ``GymnaxEnv``, a suite adapter; a raw gymnax env is wrapped): the
      trainer compiles its functional core; ``config.num_envs`` sets the
      number of envs per device.
    config: the run's :class:`AnakinConfig`.
    on_chunk: called with each chunk's :class:`~baselax.metrics.ChunkRecord`;
      ``True`` stops the run after it (default: log it at INFO level).
    checkpointer: writes the whole training state (when: ``driver.py``).
    resume: continue from the checkpointer's newest checkpoint (refused if it
      is from another env, agent or config). The continuation is exact: the
      final params equal those of an uninterrupted run, bit for bit on CPU.
    identity: JSON-able settings that also define the run (an experiment's
      agent hyper-parameters): compared between the processes of a
      multi-process run, and part of the checkpoint fingerprint.
    sweep: train a grid of agent settings (:class:`~baselax.anakin.sweep.Sweep`)
      as one program: every point x every seed, point-major, one entry per
      run in every per-seed result; ``agent`` should be the first point's.

  Returns:
    A :class:`TrainResult` (``stopped_early``: a requested stop or Ctrl-C).

    shards: in a multi-process run, this process's
      :class:`~baselax.training.shards.ShardStore` (every process has one):
      checkpoints then hold the whole state, every process's shards, and
      ``resume`` on every process continues from the newest step all of
      them hold.

  Raises:
    ConfigError: before compiling, for a config the agent or the devices
      cannot serve, or a checkpoint of another run.
    NonFiniteError: a chunk's loss or params were not finite (named).
  """
  if resume and (shards if jax.process_count() > 1 else checkpointer) is None:
    raise ValueError("resume=True needs a checkpointer (shards= in a multi-process run).")
  run_identity = check_processes_agree(agent, env, config, with_sweep(identity, sweep))
  program = program_lib.build(agent, env, config, sweep=sweep)
  derived = program.derived
  check_replay_memory(agent, env, config, program)
  fingerprint = run_fingerprint(run_identity, program.num_devices)
  restore_fn = resumer(checkpointer, shards, fingerprint, derived) if resume else None
  t_start = time.perf_counter()
  state, compiled = program.start()
  history: list[metrics_lib.ChunkRecord] = []
  first_chunk = 0
  if restore_fn is not None:
    state, first_chunk, history = restore_fn(state)
  compile_time = time.perf_counter() - t_start
  logger.info(
    "compiled in %.1fs: %d chunks of %d env steps per seed on %d device(s), %d run(s)",
    compile_time,
    derived.num_chunks,
    derived.env_steps_per_chunk,
    program.num_devices,
    derived.num_runs,
  )
  training = Training(program, compiled, state, history)
  stopped_early = training.drive(first_chunk, checkpointer, shards, fingerprint, on_chunk)
  return training.result(
    config,
    first_chunk,
    stopped_early,
    {"compile_time": compile_time, "total_time": time.perf_counter() - t_start},
  )
