"""The host-loop trainer: a Python loop over a gymnasium vector env.

The same ``BaseAgent`` objects and ``TrainingConfig`` fields as the Anakin
trainer, with jitted ``predict`` and ``update``, a numpy replay buffer
(``buffers.py``), the env stepped from the host (``stepping.py``) and the
chunk loop both trainers share (``baselax.training.driver``).
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
from baselax.hostloop.buffers import FrameStackReplay, ReplayBuffer
from baselax.hostloop.stepping import Collector, check, evaluate, example_transition, greedy_actions
from baselax.metrics import ChunkRecord, TrainResult, scalar_fields, stack_history, zero_scalars
from baselax.training import checkpoint as checkpoint_lib
from baselax.training import driver, lowering
from baselax.training.config import Derived, TrainingConfig

logger = logging.getLogger("baselax.hostloop")


def jitted_steps(agent: agent_base.BaseAgent):
  """``(act, learn)``: the agent's acting and learning steps, jitted.

  ``act(params, policy_state, obs, key) -> (actions, policy_state, key)``;
  ``learn(params, optimizer_state, batch, sums, key) -> (sums, params,
  optimizer_state)``, the logged scalars summed on device (no eager host ops).
  """

  # Compiled as the Anakin chunk is (baselax.training.lowering).
  def act(params, policy_state, obs, key):
    key, act_key = jax.random.split(key)
    out, policy_state = agent.predict(params, policy_state, obs, act_key, evaluation=False)
    return out.actions, policy_state, key

  # Only an agent whose update draws randomness gets a key (AgentContract.update_key).
  update_key = agent_base.contract_of(agent).update_key

  def learn(params, optimizer_state, batch, sums, key):
    kwargs = {"key": jax.random.fold_in(key, 1)} if update_key else {}
    out, params, optimizer_state = agent.update(params, optimizer_state, batch, **kwargs)
    scalars = scalar_fields(out)
    sums = {k: sums[k] + v for k, v in scalars.items()}
    return sums, params, optimizer_state

  return lowering.jit(act, agent), lowering.jit(learn, agent)


@dataclasses.dataclass
class Learner:
  """What training changes, on the host side of the loop (checkpointed whole)."""

  params: Any
  optimizer_state: Any
  policy_state: Any
  key: Any

  def state(self, buffer: Any) -> dict[str, Any]:
    return {
      "params": self.params,
      "optimizer_state": self.optimizer_state,
      "policy_state": self.policy_state,
      "key": self.key,
      "buffer": buffer.state_dict(),
    }


@dataclasses.dataclass
class Run:
  """One host-loop run's fixed pieces (a chunk reads them; see :func:`run_chunk`)."""

  agent: Any
  config: TrainingConfig
  act: Callable
  learn: Callable
  learner: Learner
  collector: Collector
  eval_env: Any
  wall_offset: float  # the wall time of the chunks before a resume
  started: float = dataclasses.field(default_factory=time.perf_counter)
  greedy: Callable = dataclasses.field(init=False)  # evaluation's actions
  derived: Derived = dataclasses.field(init=False)  # the loop sizes (one device)

  def __post_init__(self):
    self.greedy = greedy_actions(self.agent)
    self.derived = self.config.derive(1)


def run_chunk(run: Run, c: int):
  """Trains chunk ``c``: its env iterations, an update every ``train_every``
  once learning has started, then greedy evaluation. Returns ``(record,
  names of non-finite values)``."""
  config, derived, learner, collector = run.config, run.derived, run.learner, run.collector
  t0 = time.perf_counter()
  # Replay sampling draws from a stream per chunk, so a resumed run samples
  # as an uninterrupted one would.
  rng = np.random.default_rng([config.seed, c])
  per_chunk = derived.steps_per_chunk * config.train_every
  learning_starts = derived.learning_starts_step * config.train_every
  sums: dict[str, Any] = {}  # per-chunk sums of the logged scalars, on device
  updates = 0
  for iteration in range(c * per_chunk + 1, (c + 1) * per_chunk + 1):
    actions, learner.policy_state, learner.key = run.act(
      learner.params, learner.policy_state, collector.obs, learner.key
    )
    collector.step(np.asarray(actions))
    if (
      iteration % config.train_every == 0
      and iteration > learning_starts
      and collector.buffer.size >= config.batch_size
    ):
      batch = collector.buffer.sample(rng, config.batch_size)
      if not sums:
        sums = zero_scalars(run.agent, learner.params, learner.optimizer_state, batch)
      sums, learner.params, learner.optimizer_state = run.learn(
        learner.params, learner.optimizer_state, batch, sums, learner.key
      )
      updates += 1
  sums = {k: float(v) for k, v in jax.device_get(sums).items()}
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
  episodes, return_sum = collector.count()
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
  checkpointer: Any = None,
  resume: bool = False,
  identity: Mapping[str, Any] | None = None,
) -> TrainResult:
  """Trains ``agent`` on a gymnasium vector env with a Python loop.

  ``config`` fields mean what they mean for the Anakin trainer (env steps
  counted over all envs; one update after every ``train_every`` env
  iterations once learning has started, at the same env step as in the
  Anakin trainer: see ``TrainingConfig.learning_starts``); one seed on one
  device. Evaluation (greedy, every ``eval_every`` env steps) runs on
  ``eval_env`` when given, else is skipped (``eval_return`` is NaN).

  Args:
    compact_frames: keep the replay in a :class:`FrameStackReplay` (each
      frame once; observations must be frame stacks along axis 0, which it
      checks), else a :class:`ReplayBuffer`. ``buffer_size`` counts
      transitions for the one, frames for the other.
    reward_fn: applied to the rewards that are stored for learning (DQN's
      reward clipping, ``np.sign``); returns are counted on the env's own
      rewards.
    terminal_fn: ``terminal_fn(terminated, truncated, info) -> terminated``,
      called after every vector step: the ``terminated`` flags stored for
      learning (no bootstrap past them), while the episodes themselves go on
      (DQN's terminal on life loss, ``baselax.atari.LifeLossTerminal``).
    checkpointer: a ``baselax.training.Checkpointer`` for the params, the
      optimizer and policy states, key, replay buffer and metrics (when:
      ``baselax.training.driver``).
    resume: continue from the checkpointer's newest checkpoint (refused if it
      is from another run: ``identity``, config, agent). Params, optimizer,
      replay, exploration schedule and key go on exactly; the envs start new
      episodes (an emulator's state is not in the checkpoint).
    identity: JSON-able settings that also define the run (the env id and
      its preprocessing, the agent's hyper-parameters), in the fingerprint.

  Returns:
    A ``TrainResult`` as the Anakin runner's (a seed axis of size 1).

  Raises:
    NonFiniteError: a chunk's loss or params were not finite.
    ConfigError: ``resume`` from a checkpoint of another run.
  """
  check(env, config)
  if resume and checkpointer is None:
    raise ValueError("resume=True needs a checkpointer to resume from.")
  learner, (act, learn), buffer = fresh(agent, env, config, compact_frames)
  # What a checkpoint must match to be resumed: the host loop's, and its replay's kind.
  fingerprint = checkpoint_lib.run_identity(config, agent, env, identity)
  fingerprint.update(trainer="hostloop", compact_frames=bool(compact_frames))
  history: list[ChunkRecord] = []
  first_chunk = 0
  if resume:
    learner, first_chunk, history = restore(checkpointer, learner, buffer, fingerprint)
    logger.info("resumed from %s at chunk %d", checkpointer.directory, first_chunk)

  # A resumed run's envs start new episodes, from seeds of their own.
  obs, _ = env.reset(seed=config.seed + 100_003 * first_chunk)
  run = Run(
    agent,
    config,
    act,
    learn,
    learner,
    Collector(env, buffer, obs, reward_fn, terminal_fn),
    eval_env,
    history[-1].wall_time if history else 0.0,
  )
  stopped_early = drive(run, first_chunk, history, checkpointer, fingerprint, on_chunk)
  return result(run, history, stopped_early, first_chunk)


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
) -> tuple[Learner, tuple, Any]:
  """A new run's ``(learner, (act, learn), replay)``: the seed's params and
  states, the jitted steps and an empty buffer sized for the env's transitions."""
  params_key, policy_key, key = jax.random.split(jax.random.PRNGKey(config.seed), 3)
  params = agent.init_params(params_key)
  learner = Learner(
    params, agent.init_optimizer(params, params_key), agent.init_policy(policy_key), key
  )
  act, learn = jitted_steps(agent)
  example = example_transition(env, act, learner.params, learner.policy_state, key)
  buffer: Any = (
    FrameStackReplay(config.buffer_size, env.num_envs, example)
    if compact_frames
    else ReplayBuffer(config.buffer_size, example)
  )
  return learner, (act, learn), buffer


def save(
  run: Run, checkpointer: Any, history: list[ChunkRecord], fingerprint: Any, chunks_done: int
) -> None:
  """Writes the run's checkpoint at ``chunks_done`` (nothing without a checkpointer)."""
  if checkpointer is not None:
    params = jax.tree.map(lambda x: np.asarray(x)[None], run.learner.params)
    checkpointer.save(
      chunks_done, run.learner.state(run.collector.buffer), history, fingerprint, params=params
    )


def restore(checkpointer: Any, learner: Learner, buffer: Any, fingerprint: Any):
  """``(learner, chunks done, history)`` from the newest checkpoint; the
  buffer is loaded in place."""
  restored = checkpointer.restore(learner.state(buffer), fingerprint)
  buffer.load_state_dict(restored.state["buffer"])
  learner = Learner(
    **{k: restored.state[k] for k in ("params", "optimizer_state", "policy_state", "key")}
  )
  return learner, restored.chunks_done, list(restored.history)


def result(
  run: Run, history: list[ChunkRecord], stopped_early: bool, first_chunk: int
) -> TrainResult:
  """The :class:`TrainResult` of a run (a seed axis of size 1 on params)."""
  learner, buffer = run.learner, run.collector.buffer
  metrics = stack_history(history)
  metrics["compile_time"] = 0.0  # jit compiles on the first call, inside chunk 0
  metrics["total_time"] = time.perf_counter() - run.started
  metrics["buffer_bytes"] = buffer.nbytes
  return TrainResult(
    params=jax.tree.map(lambda x: np.asarray(x)[None], learner.params),
    state=dict(
      params=learner.params,
      optimizer_state=learner.optimizer_state,
      policy_state=learner.policy_state,
      buffer=buffer,
    ),
    metrics=metrics,
    history=history,
    config=run.config,
    derived=run.derived,
    stopped_early=stopped_early,
    first_chunk=first_chunk,
  )
