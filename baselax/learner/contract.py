"""The agent <-> trainer contract, checked before anything is compiled.

An agent declares what its ``update`` honours in ``BaseAgent.contract`` (an
:class:`~baselax.agents.base.AgentContract`); a replay variant that feeds a
batch key the agent ignores would train on a wrong target without a word, so
:func:`check_agent` refuses it, naming the agent and the fix. What can be
verified by tracing (the shape of ``td_error``) is verified too.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from baselax.agents import base as agent_base
from baselax.errors import ConfigError
from baselax.replay.buffers import Replay, ReplayConfig
from baselax.training.config import TrainingConfig


def check_agent(agent: agent_base.BaseAgent, config: TrainingConfig, env: Any = None) -> None:
  """Refuses a config (or env) that asks of ``agent`` what its contract does not offer.

  ``env``: the env the run trains on (default: the one the agent was built
  with, ``agent.env``).

  Raises:
    ConfigError: n-step returns with an agent that does not read
      ``data["discount"]`` (or has no ``discount_factor``); prioritized replay
      with one that does not read ``data["weight"]`` or return ``td_error``;
      an env with an action mask and an agent that does not honour it.
  """
  name = type(agent).__name__
  contract = agent_base.contract_of(agent)
  if not isinstance(contract, agent_base.AgentContract):
    raise ConfigError(
      f"{name}.contract must be a baselax.agents.AgentContract, got {type(contract).__name__}."
    )
  env = getattr(agent, "env", None) if env is None else env
  if getattr(env, "has_action_mask", False) and not contract.action_mask:
    raise ConfigError(
      f"{getattr(env, 'env_id', type(env).__name__)} has an action mask (the last "
      f"entries of each observation) and agent {name} does not honour it, so it "
      f"would take invalid actions. Use an agent whose contract declares "
      f"action_mask=True (baselax.agents.AgentContract), or mask invalid actions in "
      f"{name}.predict and update's bootstrap and declare it."
    )
  # (parallel is AnakinConfig's: the host loop's config has no device layouts)
  if getattr(config, "parallel", None) == "groups" and not contract.device_groups:
    raise ConfigError(
      f"parallel=groups averages gradients within groups of devices, and agent "
      f"{name} does not declare it can (its update would average over all "
      f"devices). Use parallel=data or seeds, or average with "
      f"baselax.agents.base.device_mean(tree, axis_name) in {name}.update and "
      f"declare contract = AgentContract(device_groups=True, ...)."
    )
  if config.n_step > 1:
    if "discount" not in contract.reads:
      raise ConfigError(
        f"n_step={config.n_step} needs an agent whose update reads data['discount'] "
        f"(gamma^k * (1 - terminated) of a k-step window); {name} does not declare "
        f"it, so it would bootstrap with gamma instead of gamma^k. Use n_step=1, "
        f"or make {name}.update use data['discount'] and declare "
        f"contract = AgentContract(reads={{'discount', ...}})."
      )
    if getattr(agent, "discount_factor", None) is None:
      raise ConfigError(
        f"n_step={config.n_step} computes returns with the agent's discount, but "
        f"{name}.discount_factor is None. Set it in the agent, or use n_step=1."
      )
  if ReplayConfig.of(config).uses_priorities:
    missing = []
    if "weight" not in contract.reads:
      missing.append("read data['weight'] (importance weights)")
    if not contract.td_error:
      missing.append("return per-sample OptimOutput.td_error (B,)")
    if missing:
      raise ConfigError(
        f"sampling={config.sampling} needs an agent that can {' and '.join(missing)}; "
        f"{name}'s contract does not declare it. Use sampling=uniform, or add "
        f"it to {name}.update and declare contract = AgentContract("
        f"reads={{'weight', ...}}, td_error=True)."
      )


def discount_for(agent: agent_base.BaseAgent, config: TrainingConfig) -> float | None:
  """The discount of n-step returns: the agent's ``discount_factor`` (if n > 1).

  Call it after :func:`check_agent`, which refuses an agent without one.
  """
  if config.n_step == 1:
    return None
  return agent_base.python_scalar(agent.discount_factor)  # traced when swept


def check_td_error(agent: agent_base.BaseAgent, batch_shape: Any, abstract_key: Any) -> None:
  """Verifies by tracing that ``OptimOutput.td_error`` has shape ``(batch_size,)``.

  ``batch_shape``: the abstract batch the replay samples for ``agent.update``.
  """

  def update_output(key):
    params = agent.init_params(key)
    batch = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), batch_shape)
    return agent.update(params, agent.init_optimizer(params, key), batch)[0]

  batch_size = jax.tree.leaves(batch_shape)[0].shape[0]
  out = jax.eval_shape(update_output, abstract_key)
  td_error = getattr(out, "td_error", None)
  if td_error is None or td_error.shape != (batch_size,):
    raise ConfigError(
      f"Prioritized sampling needs the agent's OptimOutput to carry per-sample "
      f"TD errors, td_error of shape ({batch_size},); "
      f"{type(agent).__name__}.update returns {type(out).__name__} "
      f"{'without td_error' if td_error is None else f'with td_error {td_error.shape}'}, "
      f"though its contract declares td_error=True. Fix the agent, or use "
      f"sampling=uniform."
    )


def check_priorities(agent: agent_base.BaseAgent, replay: Replay) -> None:
  """Refuses an agent whose ``td_error`` cannot give the batch its priorities,
  on the batch exactly as the learn step gets it (with ``weight``)."""
  key = jax.ShapeDtypeStruct((2,), jnp.uint32)
  batch = jax.eval_shape(lambda k: replay.sample(replay.init(), k, jnp.zeros(())).batch, key)
  check_td_error(agent, batch, key)
