"""Navix (Pignatelli et al. 2024, "NAVIX: scaling MiniGrid environments with
JAX", arXiv:2407.19396): MiniGrid in JAX. Ids ``"navix:Navix-Empty-5x5-v0"``.

* Observation: Navix's own (the default ``symbolic`` grid ``(H, W, 3)``
  uint8: tile, colour, state), cast to float32, shape kept.
* Termination and truncation: Navix's ``step_type``, 2 (termination: the
  goal, lava, ...) and 1 (truncation: ``max_steps``, 100 by default, given as
  ``make("navix:...", max_steps=N)``); both at once count as a termination,
  as in Navix.
* Auto-reset: ``Environment.step`` resets on the call AFTER an episode ended
  (ignoring that call's action); the adapter steps with ``_step`` (the same
  dynamics without that reset) and resets in the same step itself, so the
  final observation is the true one.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import navix
from navix.environments.environment import StepType

from baselax.envs import observations, suite_env


def registered_ids() -> tuple[str, ...]:
  """Navix's env names (without the ``navix:`` prefix)."""
  return tuple(sorted(navix.registry()))


class NavixEnv(suite_env.SuiteEnv):
  """A Navix environment behind the baselax env protocol.

  Args:
    name: a Navix id, e.g. ``"Navix-Empty-5x5-v0"``.
    num_envs: copies stepped by the gym API.
    reset_ratio: envs per fresh reset per step (``None``: one per env; see
      :mod:`baselax.envs.suite_env`).
    **kwargs: forwarded to ``navix.make`` (e.g. ``max_steps``,
      ``observation_fn``).
  """

  def __init__(
    self, name: str, num_envs: int = 1, *, reset_ratio: int | None = None, **kwargs: Any
  ):
    self.env = navix.make(name, **kwargs)
    example = self.example_raw_obs()
    env_id = suite_env.identity("navix", name, suite_env.shown(kwargs, reset_ratio=reset_ratio))
    self._init_suite(
      env_id,
      num_envs,
      observations.array_space(example),
      gymnasium.spaces.Discrete(len(self.env.action_set)),
      self.env.max_steps,
      reset_ratio=reset_ratio,
    )

  def reset_one(self, key: jax.Array):
    timestep = self.env.reset(key)
    return timestep, timestep.observation

  def step_one(self, key: jax.Array, timestep: Any, action: jax.Array):
    del key  # Navix draws its randomness from the key in its state
    timestep = self.env._step(timestep, action)  # pylint: disable=protected-access
    return (
      timestep,
      timestep.observation,
      timestep.reward,
      timestep.step_type == StepType.TERMINATION,
      timestep.step_type == StepType.TRUNCATION,
    )

  def observe(self, raw_obs: jax.Array) -> jax.Array:
    return observations.as_float(raw_obs)


def make(name: str, num_envs: int = 1, **kwargs: Any) -> NavixEnv:
  return NavixEnv(name, num_envs, **kwargs)
