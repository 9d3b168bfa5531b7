"""The host-loop trainer: a Python loop over a gymnasium vector env.

The same ``BaseAgent`` objects and ``TrainingConfig`` fields as the Anakin
trainer, and the same pieces: the replay store (``baselax.replay``: n-step
windows, prioritized sampling, frame stacks kept one frame a step), the
learning step (``baselax.learner.step``) and the chunk loop
(``baselax.training.driver``). Only the env is stepped from the host
(``stepping.py``): one jitted call acts, one adds the step to the replay,
one samples and learns.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium
import jax
import numpy as np

from baselax.agents import base as agent_base
from baselax.errors import ConfigError
from baselax.hostloop.stepping import (
  Collector,
  EnvSnapshot,
  check,
  evaluate,
  example_record,
  greedy_actions,
)
from baselax.hostloop.steps import Steps, make_run_replay, make_steps
from baselax.metrics import ChunkRecord, TrainResult, stack_history
from baselax.training import checkpoint as checkpoint_lib
from baselax.training import driver
from baselax.training.config import Derived, TrainingConfig

logger = logging.getLogger("baselax.hostloop")


#: What a checkpoint's replay is (the fingerprint's ``replay``): checkpoints of
#: the numpy buffers before it are refused, naming this.
REPLAY_FORMAT = "baselax.replay store"


@dataclasses.dataclass
class Learner:
  """What training changes, on the host side of the loop (checkpointed whole)."""

  params: Any
  optimizer_state: Any
  policy_state: Any
  key: Any  # the acting stream
  buffer: Any  # the replay's state (baselax.replay.ReplayState)

  def state(self) -> dict[str, Any]:
    return {
      "params": self.params,
      "optimizer_state": self.optimizer_state,
      "policy_state": self.policy_state,
      "key": self.key,
      "buffer": self.buffer,
    }


@dataclasses.dataclass
class Run:
  """One host-loop run's fixed pieces (a chunk reads them; see :func:`run_chunk`)."""

  agent: Any
  config: TrainingConfig
  steps: Steps
  learner: Learner
  collector: Collector
  eval_env: Any
  wall_offset: float  # the wall time of the chunks before a resume
  env_snapshot: Any = None  # saves and loads the env's own state (EnvSnapshot)
  started: float = dataclasses.field(default_factory=time.perf_counter)
  greedy: Callable = dataclasses.field(init=False)  # evaluation's actions
  derived: Derived = dataclasses.field(init=False)  # the loop sizes (one device)

  def __post_init__(self):
    self.greedy = greedy_actions(self.agent)
    self.derived = self.config.derive(1)


def run_chunk(run: Run, c: int):
  """Trains chunk ``c``: its env iterations, each added to the replay, an
  update every ``train_every`` once learning has started, then greedy
  evaluation. Returns ``(record, names of non-finite values)``."""
  config, derived, learner, steps = run.config, run.derived, run.learner, run.steps
  t0 = time.perf_counter()
  per_chunk = derived.steps_per_chunk * config.train_every
  learning_starts = derived.learning_starts_step * config.train_every
  sums = steps.zero_sums
  pending = None  # the last iteration's record, added with the next act
  for iteration in range(c * per_chunk + 1, (c + 1) * per_chunk + 1):
    if pending is None:
      actions, learner.policy_state, learner.key = steps.act(
        learner.params, learner.policy_state, run.collector.obs, learner.key
      )
    else:
      actions, learner.policy_state, learner.key, learner.buffer = steps.act_add(
        learner.params,
        learner.policy_state,
        run.collector.obs,
        learner.key,
        learner.buffer,
        pending,
      )
    step = run.collector.step(np.asarray(actions))
    pending = {k: v[:, None] for k, v in step.items()}
    if iteration % config.train_every == 0 and iteration > learning_starts:
      # Sampling keys come from the update's number, so a resumed run samples
      # as an uninterrupted one would.
      update = iteration // config.train_every - 1
      sums, learner.params, learner.optimizer_state, learner.buffer = steps.add_learn(
        learner.params,
        learner.optimizer_state,
        learner.buffer,
        pending,
        sums,
        steps.sample_key,
        np.int32(update),
      )
      pending = None
  if pending is not None:
    learner.buffer = steps.add(learner.buffer, pending)
  sums = {k: float(v) for k, v in jax.device_get(sums).items()}
  updates = int(sums.pop("updates", 0))
  elapsed = time.perf_counter() - t0
  returns = (
    np.full(config.eval_episodes, np.nan)
    if run.eval_env is None
    else evaluate(
      run.agent,
      learner.params,
      learner.policy_state,
      run.eval_env,
      config.eval_episodes,
      config.seed + c,
      run.greedy,
      max_steps=config.eval_max_steps,
    )
  )
  episodes, return_sum = run.collector.count()
  record = ChunkRecord.from_sums(
    chunk=c,
    env_steps=(c + 1) * derived.env_steps_per_chunk,
    wall_time=run.wall_offset + time.perf_counter() - run.started,
    sps=derived.env_steps_per_chunk / elapsed,
    episode_return_sum=[return_sum],
    episodes=[episodes],
    updates=[updates],
    scalar_sums={k: [v] for k, v in sums.items()},
    eval_returns=returns[None],
  )
  bad = [k for k, v in sums.items() if not np.isfinite(v)]
  # On the host: once a chunk, and no program to compile.
  if not all(np.isfinite(x).all() for x in jax.device_get(jax.tree.leaves(learner.params))):
    bad.append("params")
  return record, bad


def train(
  agent: agent_base.BaseAgent,
  env: gymnasium.vector.VectorEnv,
  config: TrainingConfig,
  *,
  eval_env: gymnasium.vector.VectorEnv | None = None,
  on_chunk: Callable[[ChunkRecord], Any] | None = None,
  compact_frames: bool = False,
  reward_fn: Callable[[np.ndarray], np.ndarray] | None = None,
  terminal_fn: Callable[..., np.ndarray] | None = None,
  truncation_interval: int = 1,
  checkpointer: Any = None,
  resume: bool = False,
  identity: Mapping[str, Any] | None = None,
  env_snapshot: EnvSnapshot | None = None,
) -> TrainResult:
  """Trains ``agent`` on a gymnasium vector env with a Python loop.

  ``config`` fields mean what they mean for the Anakin trainer (the same
  update steps, ``TrainingConfig.learning_starts``; the same replay); one
  seed on one device. Greedy evaluation every ``eval_every`` env steps runs
  on ``eval_env`` when given, else is skipped (``eval_return`` is NaN).

  Args:
    compact_frames: observations are frame stacks along axis 0 (checked on
      every step): the replay keeps the newest frame of each step only
      (:func:`baselax.replay.codecs.frame_codec`), else whole observations.
    reward_fn: applied to the rewards stored for learning (DQN's reward
      clipping, ``np.sign``); returns are counted on the env's own rewards.
    terminal_fn: ``terminal_fn(terminated, truncated, info) -> terminated``,
      called after every vector step: the ``terminated`` flags stored for
      learning (no bootstrap past them), while the episodes themselves go on
      (DQN's terminal on life loss, ``baselax.atari.LifeLossTerminal``).
    truncation_interval: the fewest steps between two truncations of one env
      (``baselax.replay.store``: fewer final observations kept); 1 is exact.
    checkpointer: a ``baselax.training.Checkpointer`` (when it saves:
      ``baselax.training.driver``).
    resume: continue from the checkpointer's newest checkpoint (refused if it
      is from another run: ``identity``, config, agent). Params, optimizer,
      replay, exploration schedule and keys go on exactly; the envs continue
      their episodes with ``env_snapshot``, else start new ones.
    identity: JSON-able settings that also define the run (the env id and
      its preprocessing, the agent's hyper-parameters), in the fingerprint.
    env_snapshot: saves the env's own state in each checkpoint and loads it
      on resume (:class:`~baselax.hostloop.stepping.EnvSnapshot`; Atari's:
      ``baselax.envs.atari_env.AtariSnapshot``), so that a resumed run
      equals an uninterrupted one.

  Returns:
    A ``TrainResult`` as the Anakin runner's (a seed axis of size 1); its
    ``state`` has the replay's state (``buffer``) and functions (``replay``).

  Raises:
    NonFiniteError: a chunk's loss or params were not finite.
    ConfigError: a checkpoint of another run; an agent and a replay that
      cannot train together (``baselax.learner.contract``).
  """
  check(env, config)
  if resume and checkpointer is None:
    raise ValueError("resume=True needs a checkpointer to resume from.")
  learner, steps = fresh(agent, env, config, compact_frames, truncation_interval)
  fingerprint = run_fingerprint(config, agent, env, identity, compact_frames)
  history: list[ChunkRecord] = []
  first_chunk, extra = 0, None
  if resume:
    learner, first_chunk, history, extra = restore(checkpointer, learner, fingerprint)
    logger.info("resumed from %s at chunk %d", checkpointer.directory, first_chunk)
  collector = start_collector(
    env,
    config.seed,
    first_chunk,
    Collector(env, None, reward_fn, terminal_fn, compact_frames),
    env_snapshot,
    extra,
  )
  wall = history[-1].wall_time if history else 0.0
  run = Run(agent, config, steps, learner, collector, eval_env, wall, env_snapshot)
  stopped_early = drive(run, first_chunk, history, checkpointer, fingerprint, on_chunk)
  return result(run, history, stopped_early, first_chunk)


def start_collector(
  env: Any, seed: int, first_chunk: int, collector: Collector, env_snapshot: Any, extra: Any
) -> Collector:
  """The collector, its env reset: a resumed run's games continue where the
  checkpoint left them (``env_snapshot`` and a checkpoint that has them),
  else new episodes start, from seeds of their own after a resume."""
  obs, _ = env.reset(seed=seed + 100_003 * first_chunk)
  collector.obs = obs
  if env_snapshot is not None and extra:
    env_snapshot.load(env, extra["env"])
    collector.load_state_dict(extra["collector"])
  elif first_chunk:
    logger.info("the envs start new episodes (no env state in the checkpoint)")
  return collector


def run_fingerprint(
  config: TrainingConfig, agent: Any, env: Any, identity: Any, compact_frames: bool
) -> dict[str, Any]:
  """What a checkpoint must match to be resumed: the run's identity, the host
  loop's, and its replay's kind."""
  fingerprint = checkpoint_lib.run_identity(config, agent, env, identity)
  fingerprint.update(trainer="hostloop", compact_frames=bool(compact_frames), replay=REPLAY_FORMAT)
  return fingerprint


def drive(
  run: Run,
  first_chunk: int,
  history: list[ChunkRecord],
  checkpointer: Any,
  fingerprint: Any,
  on_chunk: Callable[[ChunkRecord], Any] | None,
) -> bool:
  """Runs the chunks from ``first_chunk`` on (``baselax.training.driver``):
  checkpoints, stops on a signal, and says whether it stopped early."""
  return driver.drive(
    range(first_chunk, run.derived.num_chunks),
    functools.partial(run_chunk, run),
    run.derived,
    history=history,
    save=functools.partial(save, run, checkpointer, history, fingerprint),
    checkpointer=checkpointer,
    on_chunk=on_chunk,
    log=logger.info,
    stop_enabled=checkpointer is not None,
  )


def fresh(
  agent: agent_base.BaseAgent,
  env: gymnasium.vector.VectorEnv,
  config: TrainingConfig,
  compact_frames: bool,
  truncation_interval: int = 1,
) -> tuple[Learner, Steps]:
  """A new run's ``(learner, steps)``: the seed's params and states, an empty
  replay sized for the env's steps, and the compiled steps."""
  params_key, policy_key, key = jax.random.split(jax.random.PRNGKey(config.seed), 3)
  params = agent.init_params(params_key)
  policy_state = agent.init_policy(policy_key)
  record = example_record(env, agent, key)
  replay = make_run_replay(agent, config, record, compact_frames, truncation_interval)
  optimizer_state = agent.init_optimizer(params, params_key)
  learner = Learner(params, optimizer_state, policy_state, key, replay.init())
  return learner, make_steps(agent, config, replay, learner, record)


def save(
  run: Run, checkpointer: Any, history: list[ChunkRecord], fingerprint: Any, chunks_done: int
) -> None:
  """Writes the run's checkpoint at ``chunks_done`` (nothing without a checkpointer)."""
  if checkpointer is not None:
    params = jax.tree.map(lambda x: np.asarray(x)[None], run.learner.params)
    extra = None
    if run.env_snapshot is not None:
      extra = {
        "env": run.env_snapshot.save(run.collector.env),
        "collector": run.collector.state_dict(),
      }
    checkpointer.save(
      chunks_done, run.learner.state(), history, fingerprint, params=params, extra=extra
    )


def restore(checkpointer: Any, learner: Learner, fingerprint: Any):
  """``(learner, chunks done, history, extra)`` from the newest checkpoint
  (``extra``: the env snapshot and collector state, if it was saved).

  Raises:
    ConfigError: the checkpoint holds the numpy replay of an older baselax.
  """
  saved = checkpointer.read_meta(checkpointer.intact_step())["fingerprint"]
  if saved.get("trainer") == "hostloop" and "replay" not in saved:
    raise ConfigError(
      f"Checkpoint {checkpointer.directory} holds the host loop's numpy replay buffer "
      f"of an older baselax, which this one no longer reads (its replay is "
      f"{REPLAY_FORMAT!r}): the run evaluates, but cannot be resumed; start a new run."
    )
  restored = checkpointer.restore(learner.state(), fingerprint)
  learner = Learner(**{k: restored.state[k] for k in learner.state()})
  return learner, restored.chunks_done, list(restored.history), restored.extra


def result(
  run: Run, history: list[ChunkRecord], stopped_early: bool, first_chunk: int
) -> TrainResult:
  """The :class:`TrainResult` of a run (a seed axis of size 1 on params)."""
  learner = run.learner
  metrics = stack_history(history)
  metrics["compile_time"] = 0.0  # jit compiles on the first call, inside chunk 0
  metrics["total_time"] = time.perf_counter() - run.started
  metrics["buffer_bytes"] = sum(x.nbytes for x in jax.tree.leaves(learner.buffer))
  return TrainResult(
    params=jax.tree.map(lambda x: np.asarray(x)[None], learner.params),
    state=dict(
      params=learner.params,
      optimizer_state=learner.optimizer_state,
      policy_state=learner.policy_state,
      buffer=learner.buffer,
      replay=run.steps.replay,
    ),
    metrics=metrics,
    history=history,
    config=run.config,
    derived=run.derived,
    stopped_early=stopped_early,
    first_chunk=first_chunk,
  )
