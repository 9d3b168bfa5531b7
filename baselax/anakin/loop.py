"""The Anakin loop: act -> env -> buffer -> learn, as one pure scanned function.

Podracer's Anakin architecture (Hessel et al. 2021, arXiv:2104.06272, sec. 3):
because the environment is written in JAX (gymnax), acting, stepping the env,
adding to and sampling from the replay buffer (flashbax) and the gradient
update are one pure function of a named state, compiled once into a
``jax.lax.scan``. Nothing leaves the device until a chunk of training ends.

Everything here is for ONE seed on ONE device. The program (``program.py``)
adds the seed axis with ``vmap`` and the device axis with ``pmap``; this file
only receives the device axis's name (``axis_name``) to hand to
``agent.update``. Array layout inside one (device, seed) program::

    obs, env_state leaves ..... (num_envs, ...)
    buffer .................... buffer_size transitions, one copy of each obs (baselax.replay)
    a sampled batch ........... (batch_size, ...)

One scan step is ``train_every`` env iterations (every env steps once per
iteration) followed by one ``agent.update``, once learning has started.

The trainer talks to the agent only through the documented ``BaseAgent``
methods and reads only ``PolicyOutput.actions``; params, policy and optimizer
states are opaque pytrees here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from baselax.agents import base as agent_base
from baselax.anakin.config import DEFAULT_EVAL_MAX_STEPS, AnakinConfig, Derived
from baselax.envs.gymnax_env import check_env
from baselax.envs.protocol import JaxEnv
from baselax.learner import contract
from baselax.learner.step import make_learn
from baselax.metrics import all_finite
from baselax.replay import buffers, records

Metrics = dict[str, jax.Array]


#: Folded into a seed's root key to start its evaluation stream.
EVAL_STREAM = 0xE5A1

#: Training episodes whose returns are kept for the "recent return": the mean
#: over the last 100 episodes, how the MinAtar and Atari papers report training.
RECENT_EPISODES = 100


class TrainState(NamedTuple):
  """Everything that changes during training, for one (device, seed)."""

  params: Any
  optimizer_state: Any
  policy_state: Any
  buffer_state: Any
  env_state: Any  # gymnax env states, leading axis num_envs
  obs: jax.Array  # (num_envs, *obs_shape) observations to act on
  key: jax.Array  # the training stream: acting, envs, sampling
  episode_return: jax.Array  # (num_envs,) return of the running episodes
  recent_returns: jax.Array  # (RECENT_EPISODES,) returns of the last episodes that ended
  episodes: jax.Array  # [] training episodes ended (recent_returns' write head)
  env_steps: jax.Array  # [] env steps taken by this (device, seed)
  eval_key: jax.Array  # evaluation's own stream (never split by training)


class AnakinFns(NamedTuple):
  """The pure pieces of a run; see :func:`make_anakin`."""

  init: Callable[[jax.Array, jax.Array], TrainState]
  run_chunk: Callable[[TrainState, jax.Array], tuple[TrainState, Metrics]]
  evaluate: Callable[[Any, Any, jax.Array], jax.Array]


def make_anakin(
  agent: agent_base.BaseAgent,
  env: JaxEnv,
  config: AnakinConfig,
  derived: Derived,
  axis_name: str | None = None,
) -> AnakinFns:
  """Builds the pure ``init``/``run_chunk``/``evaluate`` functions of a run.

  Args:
    agent: any ``BaseAgent``.
    env: a :class:`~baselax.envs.JaxEnv`; its functional core is compiled
      into the scan.
    config: the run's configuration.
    derived: sizes derived from ``config`` for the device count.
    axis_name: the mapped device axis whose gradients ``agent.update`` must
      average, or ``None`` on a single device.
  """
  contract.check_agent(agent, config, env)
  replay = buffers.run_replay(agent, env, config, contract.discount_for(agent, config))
  if replay.prioritized:
    contract.check_priorities(agent, replay)
  eval_max_steps = episode_step_limit(env, config.eval_max_steps)
  init = make_init(agent, env, config, replay.init)
  collect = make_collect(make_env_iteration(agent, env, config), config.train_every)
  learn, skip_learning = make_learn(agent, config, replay.prioritized, axis_name)
  update_key = agent_base.contract_of(agent).update_key
  total_steps = derived.total_steps  # anneals PER's beta

  def scan_step(state: TrainState, step_index: jax.Array) -> tuple[TrainState, Metrics]:
    """``train_every`` env iterations, add them to the buffer, then learn."""
    state, transitions, stats = collect(state)
    buffer_state = replay.add(state.buffer_state, transitions)
    key, sample_key = jax.random.split(state.key)
    progress = step_index.astype(jnp.float32) / total_steps
    sample = replay.sample(buffer_state, sample_key, progress)
    # step_index is not mapped over seeds, so this stays a real branch under
    # vmap (a batched predicate would make XLA run both sides).
    learned = step_index >= derived.learning_starts_step
    keys = (jax.random.fold_in(sample_key, 1),) if update_key else ()
    params, optimizer_state, scalars, priorities = jax.lax.cond(
      learned, learn, skip_learning, state.params, state.optimizer_state, sample.batch, *keys
    )
    # Masked, not branched: the buffer stays out of the conditional. Before
    # learning starts the draws come from a tree that may hold no sampleable
    # item, so writing priorities then could make unwritten slots sampleable.
    buffer_state = replay.set_priorities(buffer_state, sample.indices, priorities, learned)
    state = state._replace(
      params=params, optimizer_state=optimizer_state, buffer_state=buffer_state, key=key
    )
    return state, {**stats, **scalars}

  def run_chunk(state: TrainState, first_step: jax.Array) -> tuple[TrainState, Metrics]:
    """Runs ``steps_per_chunk`` scan steps; metrics are summed over the chunk."""
    steps = first_step + jnp.arange(derived.steps_per_chunk)
    state, metrics = jax.lax.scan(scan_step, state, steps)
    metrics = jax.tree.map(lambda x: jnp.sum(x, axis=0), metrics)
    kept = jnp.minimum(state.episodes, RECENT_EPISODES)
    metrics["recent_return_sum"] = jnp.sum(
      jnp.where(jnp.arange(RECENT_EPISODES) < kept, state.recent_returns, 0.0)
    )
    metrics["recent_episodes"] = kept.astype(jnp.float32)
    # One reduction per chunk feeds the runner's non-finite guard.
    metrics["params_finite"] = all_finite(state.params)
    return state, metrics

  def evaluate(params: Any, policy_state: Any, key: jax.Array) -> jax.Array:
    """Greedy returns of ``eval_episodes_per_device`` fresh episodes, ``(E,)``."""
    return greedy_returns(
      agent, env, params, policy_state, key, derived.eval_episodes_per_device, eval_max_steps
    )

  return AnakinFns(init=init, run_chunk=run_chunk, evaluate=evaluate)


def make_init(
  agent: agent_base.BaseAgent, env: JaxEnv, config: AnakinConfig, empty_buffer: Callable[[], Any]
) -> Callable[[jax.Array, jax.Array], TrainState]:
  """``init(key, device_index) -> TrainState`` of one (device, seed)."""
  num_envs = config.num_envs

  def init(key: jax.Array, device_index: jax.Array) -> TrainState:
    """Initial state; params are equal on every device, env/exploration keys differ."""
    params_key, local_key = jax.random.split(key)
    local_key = jax.random.fold_in(local_key, device_index)
    env_key, policy_key, loop_key = jax.random.split(local_key, 3)
    params = agent.init_params(params_key)
    optimizer_state = agent.init_optimizer(params, params_key)
    policy_state = agent.init_policy(policy_key)
    obs, env_state = env.functional_reset(env_key, num_envs)
    buffer_state = empty_buffer()
    # Evaluation draws from a stream of its own, so how often a run is
    # evaluated (eval_every, eval_episodes) cannot change how it trains.
    eval_key = jax.random.fold_in(jax.random.fold_in(key, EVAL_STREAM), device_index)
    return TrainState(
      params=params,
      optimizer_state=optimizer_state,
      policy_state=policy_state,
      buffer_state=buffer_state,
      env_state=env_state,
      obs=obs,
      key=loop_key,
      episode_return=jnp.zeros((num_envs,), jnp.float32),
      recent_returns=jnp.zeros((RECENT_EPISODES,), jnp.float32),
      episodes=jnp.zeros((), jnp.int32),
      env_steps=jnp.zeros((), jnp.int32),
      eval_key=eval_key,
    )

  return init


def make_env_iteration(agent: agent_base.BaseAgent, env: JaxEnv, config: AnakinConfig):
  """``env_iteration(state, None) -> (state, (transitions, stats))``: every env
  acts and steps once; the transitions are ``(num_envs, ...)`` step records."""
  num_envs = config.num_envs

  def env_iteration(state: TrainState, unused) -> tuple[TrainState, tuple[Any, Metrics]]:
    """Acts in every env once; returns the transitions ``(num_envs, ...)``."""
    del unused
    key, act_key, env_key = jax.random.split(state.key, 3)
    out, policy_state = agent.predict(
      state.params, state.policy_state, state.obs, act_key, evaluation=False
    )
    env_state, step = env.functional_step(env_key, state.env_state, out.actions)
    done = jnp.logical_or(step.terminated, step.truncated)
    episode_return = state.episode_return + step.reward
    stats = {
      "episode_return_sum": jnp.sum(jnp.where(done, episode_return, 0.0)),
      "episodes": jnp.sum(done.astype(jnp.float32)),
    }
    # What each env step hands the replay.
    transitions = records.step_record(state.obs, out.actions, step, config.reward_clip)
    recent_returns, episodes = remember_returns(
      state.recent_returns, state.episodes, episode_return, done
    )
    state = state._replace(
      policy_state=policy_state,
      env_state=env_state,
      obs=step.obs,
      key=key,
      episode_return=jnp.where(done, 0.0, episode_return),
      recent_returns=recent_returns,
      episodes=episodes,
      env_steps=state.env_steps + num_envs,
    )
    return state, (transitions, stats)

  return env_iteration


def make_collect(env_iteration: Callable, train_every: int) -> Callable:
  """``collect(state) -> (state, transitions, stats)``: ``train_every`` env
  iterations, their transitions ``(num_envs, train_every, ...)`` and their
  episode statistics summed."""

  def collect(state: TrainState) -> tuple[TrainState, Any, Metrics]:
    if train_every == 1:
      state, (transitions, stats) = env_iteration(state, None)
      return state, jax.tree.map(lambda x: x[:, None], transitions), stats
    state, (transitions, stats) = jax.lax.scan(env_iteration, state, None, length=train_every)
    # (train_every, num_envs, ...) -> (num_envs, train_every, ...)
    transitions = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), transitions)
    return state, transitions, jax.tree.map(jnp.sum, stats)

  return collect


def remember_returns(
  recent: jax.Array, count: jax.Array, returns: jax.Array, done: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Writes the returns of the episodes that ended (``done``) into the ring
  ``recent`` ``(R,)`` at ``count`` onwards; returns the ring and the new count.

  Episodes that end at the same step enter in env order; the ring keeps the
  last ``R`` (of more than ``R`` ending at once, which are kept is unspecified).
  """
  size = recent.shape[0]
  slots = jnp.where(done, (count + jnp.cumsum(done) - 1) % size, size)  # size: dropped
  recent = recent.at[slots].set(returns, mode="drop")
  return recent, count + jnp.sum(done, dtype=count.dtype)


def greedy_returns(
  agent: agent_base.BaseAgent,
  env: JaxEnv,
  params: Any,
  policy_state: Any,
  key: jax.Array,
  num_episodes: int,
  max_steps: int,
) -> jax.Array:
  """Undiscounted returns ``(num_episodes,)`` of fresh greedy episodes.

  Each episode counts until its first termination or truncation (or
  ``max_steps``); the envs that finish early idle until all are done.
  """
  reset_key, key = jax.random.split(key)
  obs, env_state = env.functional_reset(reset_key, num_episodes)

  def cond(carry):
    _, _, _, done, _, t = carry
    return jnp.logical_and(jnp.logical_not(jnp.all(done)), t < max_steps)

  def body(carry):
    key, obs, env_state, done, returns, t = carry
    key, act_key, env_key = jax.random.split(key, 3)
    out, _ = agent.predict(params, policy_state, obs, act_key, evaluation=True)
    env_state, step = env.functional_step(env_key, env_state, out.actions)
    returns = returns + jnp.where(done, 0.0, step.reward)
    done = done | step.terminated | step.truncated
    return key, step.obs, env_state, done, returns, t + 1

  carry = (
    key,
    obs,
    env_state,
    jnp.zeros((num_episodes,), bool),
    jnp.zeros((num_episodes,), jnp.float32),
    jnp.zeros((), jnp.int32),
  )
  return jax.lax.while_loop(cond, body, carry)[4]


def episode_step_limit(env: JaxEnv, max_steps: int | None = None) -> int:
  """``max_steps`` if given, else the env's own time limit
  (``env.max_episode_steps``; 10,000 if it has none) capped at
  :data:`DEFAULT_EVAL_MAX_STEPS`."""
  if max_steps:
    return max_steps
  limit = getattr(env, "max_episode_steps", None)
  return min(10_000 if limit is None else int(limit), DEFAULT_EVAL_MAX_STEPS)


def chunk_and_evaluate(
  fns: AnakinFns, state: TrainState, first_step: jax.Array
) -> tuple[TrainState, Metrics]:
  """One training chunk followed by a greedy evaluation of its final params.

  The evaluation key is the run's evaluation stream folded with the step the
  chunk started at: the training key is left as it is.
  """
  state, metrics = fns.run_chunk(state, first_step)
  eval_key = jax.random.fold_in(state.eval_key, first_step)
  metrics["eval_returns"] = fns.evaluate(state.params, state.policy_state, eval_key)
  return state, metrics


def make_train(
  agent: agent_base.BaseAgent,
  env: JaxEnv,
  config: AnakinConfig,
  *,
  num_devices: int = 1,
  axis_name: str | None = None,
) -> Callable[..., tuple[TrainState, Metrics]]:
  """Returns a pure ``train_fn(key) -> (final_state, metrics)`` for a whole run.

  ``train_fn`` is ``jax.jit``-able and ``jax.vmap``-able over keys (one run per
  key, PureJaxRL style). It trains on one device; to map it over devices
  yourself pass ``num_devices`` and the mapped ``axis_name`` (and call
  ``train_fn(key, device_index)``). :func:`baselax.anakin.train` does all of
  this for you, with logging between chunks.

  ``metrics`` has a leading axis of chunks: per chunk the summed
  ``episode_return_sum``/``episodes`` of finished training episodes, the summed
  scalar fields of the agent's ``OptimOutput`` and ``updates``, and
  ``eval_returns`` ``(num_chunks, eval_episodes)``.
  """
  env = check_env(env)
  derived = config.derive(num_devices)
  fns = make_anakin(agent, env, config, derived, axis_name)

  def train_fn(key: jax.Array, device_index: jax.Array | int = 0):
    state = fns.init(key, jnp.asarray(device_index, jnp.int32))
    chunk_starts = jnp.arange(derived.num_chunks) * derived.steps_per_chunk
    return jax.lax.scan(lambda s, start: chunk_and_evaluate(fns, s, start), state, chunk_starts)

  return train_fn
