"""XLand-MiniGrid (Nikulin et al. 2023, "XLand-MiniGrid: scalable
meta-reinforcement learning environments in JAX", arXiv:2312.12044).
Ids ``"xminigrid:MiniGrid-Empty-5x5"``.

* Observation: the agent's egocentric view ``(view_size, view_size, 2)``
  uint8 (tile, colour), cast to float32, shape kept.
* Termination and truncation: XLand-MiniGrid's ``TimeStep``: a last step
  with discount 0 terminated (the goal), a last step with discount 1 was cut
  by ``max_steps`` (``4 * height * width`` by default; 100 for Empty-5x5).
* Auto-reset: the plain ``Environment.step`` does none (that is its
  ``GymAutoResetWrapper``'s job); the adapter resets in the same step.
* ``XLand-MiniGrid-R*`` ids need a ruleset, as in XLand-MiniGrid:
  ``make("xminigrid:XLand-MiniGrid-R1-9x9", ruleset=...)`` (every keyword
  replaces a field of the env's ``EnvParams``).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import xminigrid
from xminigrid.types import StepType

from baselax.envs import observations, suite_env


def registered_ids() -> tuple[str, ...]:
  """XLand-MiniGrid's env names (without the ``xminigrid:`` prefix)."""
  return tuple(xminigrid.registered_environments())


class XMiniGridEnv(suite_env.SuiteEnv):
  """An XLand-MiniGrid environment behind the baselax env protocol.

  Args:
    name: an XLand-MiniGrid id, e.g. ``"MiniGrid-Empty-5x5"``.
    num_envs: copies stepped by the gym API.
    reset_ratio: envs per fresh reset per step (``None``: one per env; see
      :mod:`baselax.envs.suite_env`).
    **kwargs: fields of its ``EnvParams`` (``max_steps``, ``view_size``, ...).
  """

  def __init__(
    self, name: str, num_envs: int = 1, *, reset_ratio: int | None = None, **kwargs: Any
  ):
    self.env, self.env_params = xminigrid.make(name, **kwargs)
    example = self.example_raw_obs()
    env_id = suite_env.identity("xminigrid", name, suite_env.shown(kwargs, reset_ratio=reset_ratio))
    self._init_suite(
      env_id,
      num_envs,
      observations.array_space(example),
      gymnasium.spaces.Discrete(int(self.env.num_actions(self.env_params))),
      self.env_params.max_steps,
      reset_ratio=reset_ratio,
    )

  def reset_one(self, key: jax.Array):
    timestep = self.env.reset(self.env_params, key)
    return timestep, timestep.observation

  def step_one(self, key: jax.Array, timestep: Any, action: jax.Array):
    del key  # the dynamics are deterministic given the state
    timestep = self.env.step(self.env_params, timestep, action)
    last = timestep.step_type == StepType.LAST
    ended_by_task = timestep.discount == 0.0
    return (
      timestep,
      timestep.observation,
      timestep.reward,
      last & ended_by_task,
      last & ~ended_by_task,
    )

  def observe(self, raw_obs: jax.Array) -> jax.Array:
    return observations.as_float(raw_obs)


def make(name: str, num_envs: int = 1, **kwargs: Any) -> XMiniGridEnv:
  return XMiniGridEnv(name, num_envs, **kwargs)
