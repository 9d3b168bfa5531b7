"""One learning step from a replay sample: what both trainers compile.

The Anakin loop calls it inside its scan (``baselax.anakin.loop``), the host
loop inside one jitted call per update (``baselax.hostloop.trainer``): the
same update, the same logged scalars, the same priorities written back.
"""

from __future__ import annotations

import jax.numpy as jnp

from baselax.agents import base as agent_base
from baselax.metrics import scalar_fields, zero_scalars
from baselax.training.config import TrainingConfig


def make_learn(
  agent: agent_base.BaseAgent,
  config: TrainingConfig,
  prioritized: bool,
  axis_name: str | None = None,
):
  """``(learn, skip_learning)``: the two branches of a scan step's update.

  Both map ``(params, optimizer_state, batch, *key)`` to ``(params,
  optimizer_state, scalars, priorities)``.
  """
  # The learn/skip branches take and return only what an update touches, so
  # the replay buffer and env states never pass through the conditional.
  # They also return the sampled items' new priorities, |TD error| + epsilon;
  # they are written only on steps that learned (skip_learning's are unused).
  # An agent whose update draws randomness (AgentContract.update_key) gets a
  # key derived from the step's sample key; other agents get exactly the call
  # (and the key stream) they always got.
  update_key = agent_base.contract_of(agent).update_key

  def learn(params, optimizer_state, batch, *key):
    kwargs = {"key": key[0]} if update_key else {}
    out, params, optimizer_state = agent.update(
      params, optimizer_state, batch, axis_name=axis_name, **kwargs
    )
    scalars = scalar_fields(out)
    scalars["updates"] = jnp.ones((), jnp.float32)
    priorities = (
      jnp.abs(out.td_error) + config.priority_epsilon
      if prioritized
      else jnp.ones((config.batch_size,))
    )
    return params, optimizer_state, scalars, priorities

  def skip_learning(params, optimizer_state, batch, *key):
    del key
    scalars = zero_scalars(agent, params, optimizer_state, batch)
    scalars["updates"] = jnp.zeros((), jnp.float32)
    return params, optimizer_state, scalars, jnp.ones((config.batch_size,))

  return learn, skip_learning
