"""The host loop's compiled steps: act, add to the replay, sample and learn.

The replay is the Anakin trainer's (``baselax.replay``), built after the
contract's checks (``baselax.learner.contract``), and the learning step is
its (``baselax.learner.step.make_learn``); they are jitted here with the
compiler options of the Anakin chunk (``baselax.training.lowering``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from baselax.agents import base as agent_base
from baselax.errors import ConfigError
from baselax.learner import contract
from baselax.learner.step import make_learn
from baselax.replay import buffers as replay_lib
from baselax.replay import codecs
from baselax.training import lowering
from baselax.training.config import TrainingConfig

#: Folded into the seed's key to start the replay-sampling stream.
SAMPLE_STREAM = 0x5A3


class Steps(NamedTuple):
  """A run's compiled steps (:func:`jitted_steps`) and what they start from."""

  act: Callable
  act_add: Callable
  add: Callable
  add_learn: Callable
  zero_sums: Any  # the logged scalars' sums before a chunk's first update
  sample_key: jax.Array  # the sampling stream's root (folded with the update's number)
  replay: Any  # the replay's pure functions (baselax.replay.Replay)


def jitted_steps(agent: agent_base.BaseAgent, config: TrainingConfig, replay: Any, total: int):
  """``(act, act_add, add, add_learn)``: the agent's acting step, the replay's
  add and the learning step, jitted (as the Anakin chunk is compiled:
  ``baselax.training.lowering``) and fused so that an env iteration costs one
  call, and one more where it learns (as the old act and learn calls did).

  ``act(params, policy_state, obs, key) -> (actions, policy_state, key)``;
  ``act_add(params, policy_state, obs, key, buffer, record) -> (actions,
  policy_state, key, buffer)`` adds the previous iteration's record first;
  ``add(buffer, record) -> buffer``; ``add_learn(params, optimizer_state,
  buffer, record, sums, key, step) -> (sums, params, optimizer_state,
  buffer)`` adds this iteration's record, samples (``key`` folded with
  ``step``, the update's number), updates
  (``baselax.learner.step.make_learn``, the Anakin loop's) and writes the
  priorities back, the logged scalars summed on device. The buffer is
  donated to each (updated in place). ``total``: the run's scan steps
  (``Derived.total_steps``: prioritized replay's beta anneals over them).
  """

  def act(params, policy_state, obs, key):
    key, act_key = jax.random.split(key)
    out, policy_state = agent.predict(params, policy_state, obs, act_key, evaluation=False)
    return out.actions, policy_state, key

  def act_add(params, policy_state, obs, key, buffer, record):
    return (*act(params, policy_state, obs, key), replay.add(buffer, record))

  update, _ = make_learn(agent, config, replay.prioritized)
  update_key = agent_base.contract_of(agent).update_key

  def add_learn(params, optimizer_state, buffer, record, sums, key, step):
    # The update's own key: the sampling stream folded with its number
    # (folded here: an eager fold_in cost as much as the update on a CPU).
    key = jax.random.fold_in(key, step)
    buffer = replay.add(buffer, record)
    sample = replay.sample(buffer, key, step.astype(jnp.float32) / total)
    keys = (jax.random.fold_in(key, 1),) if update_key else ()
    params, optimizer_state, scalars, priorities = update(
      params, optimizer_state, sample.batch, *keys
    )
    buffer = replay.set_priorities(buffer, sample.indices, priorities)
    sums = {k: sums.get(k, 0.0) + v for k, v in scalars.items()}
    return sums, params, optimizer_state, buffer

  return (
    lowering.jit(act, agent),
    lowering.jit(act_add, agent, donate_argnums=4),
    jax.jit(replay.add, donate_argnums=0),
    lowering.jit(add_learn, agent, donate_argnums=2),
  )


def make_run_replay(
  agent: agent_base.BaseAgent,
  config: TrainingConfig,
  record: dict[str, Any],
  compact_frames: bool,
  truncation_interval: int,
) -> Any:
  """The run's replay (``baselax.replay``), after the contract's checks.

  Raises:
    ConfigError: the agent cannot train with this replay, or learning would
      start before a whole window is in the replay.
  """
  contract.check_agent(agent, config, env=None)
  codec = (codecs.frame_codec if compact_frames else codecs.native_codec)(record["obs"])
  replay = replay_lib.make_replay(
    replay_lib.ReplayConfig.of(config),
    record,
    contract.discount_for(agent, config),
    codec=codec,
    truncation_interval=truncation_interval,
  )
  if replay.prioritized:
    contract.check_priorities(agent, replay)
  window, derived = replay.store.window, config.derive(1)
  if derived.learning_starts_step * config.train_every + 1 < window:
    raise ConfigError(
      f"learning_starts ({config.learning_starts}) comes before every env has a whole "
      f"sampled window ({window} steps: frame stacks and n_step); raise it to at least "
      f"{(window - 1) * config.num_envs}."
    )
  return replay


def make_steps(
  agent: agent_base.BaseAgent,
  config: TrainingConfig,
  replay: Any,
  learner: Any,
  record: dict[str, Any],
) -> Steps:
  """The run's :class:`Steps` for ``replay``; ``learner``: the fresh run's
  state and ``record`` one step's (their shapes size the logged scalars)."""
  act, act_add, add, add_learn = jitted_steps(agent, config, replay, config.derive(1).total_steps)
  records = {
    k: jax.ShapeDtypeStruct((config.num_envs, 1, *v.shape), v.dtype) for k, v in record.items()
  }
  sums = jax.eval_shape(
    add_learn,
    learner.params,
    learner.optimizer_state,
    learner.buffer,
    records,
    {},
    learner.key,
    np.int32(0),
  )[0]
  zero_sums = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), sums)
  sample_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), SAMPLE_STREAM)
  return Steps(act, act_add, add, add_learn, zero_sums, sample_key, replay)
