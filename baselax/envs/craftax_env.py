"""Craftax (Matthews et al. 2024, "Craftax: a lightning-fast benchmark for
open-ended reinforcement learning", arXiv:2402.16801).
Ids ``"craftax:Craftax-Classic-Symbolic-v1"``.

* Observation: Craftax's own, float32: the symbolic vector (``(1345,)`` for
  Classic) or the pixels ``(H, W, 3)``.
* Termination and truncation: Craftax ends an episode on death (and, in
  Classic, lava; in Craftax, beating the final boss) or at
  ``max_timesteps`` (10,000 by default) and reports both as ``done`` with
  discount 0. The adapter splits them: ``terminated`` is Craftax's own
  ``is_terminal`` with the time limit lifted, ``truncated`` the rest of
  ``done``; a transition cut by the time limit bootstraps.
  ``make("craftax:...", max_timesteps=N)`` (any ``EnvParams`` field) sets it.
* Auto-reset: the adapter steps Craftax's ``NoAutoReset`` env and resets in
  the same step, so the final observation is the true one. Generating a
  world costs about 13 steps on a CPU, so by default one fresh reset is made per
  16 envs per step (``reset_ratio=16``, the Craftax baselines' optimistic
  resets, see :mod:`baselax.envs.suite_env`); ``reset_ratio=None`` gives
  every env its own.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import numpy as np
from craftax import craftax_env

from baselax.envs import observations, suite_env

#: The ids ``craftax.craftax_env.make_craftax_env_from_name`` knows.
IDS = (
  "Craftax-Classic-Symbolic-v1",
  "Craftax-Classic-Pixels-v1",
  "Craftax-Symbolic-v1",
  "Craftax-Pixels-v1",
)

#: Envs per fresh reset per step (see :mod:`baselax.envs.suite_env`).
DEFAULT_RESET_RATIO = 16


def registered_ids() -> tuple[str, ...]:
  """Craftax's env names (without the ``craftax:`` prefix)."""
  return IDS


class CraftaxEnv(suite_env.SuiteEnv):
  """A Craftax environment behind the baselax env protocol.

  Args:
    name: one of :data:`IDS`.
    num_envs: copies stepped by the gym API.
    reset_ratio: envs per fresh reset per step (``None``: one per env).
    **kwargs: fields of its ``EnvParams`` (``max_timesteps``, ...).
  """

  def __init__(
    self,
    name: str,
    num_envs: int = 1,
    *,
    reset_ratio: int | None = DEFAULT_RESET_RATIO,
    **kwargs: Any,
  ):
    self.env = craftax_env.make_craftax_env_from_name(name, auto_reset=False)
    self.env_params = self.env.default_params.replace(**kwargs)
    # The same params without a time limit: is_terminal then reports only
    # what ends an episode for good (death, lava, the boss).
    self._no_time_limit = self.env_params.replace(max_timesteps=np.iinfo(np.int32).max)
    space = self.env.observation_space(self.env_params)
    shown = kwargs if reset_ratio == DEFAULT_RESET_RATIO else dict(kwargs, reset_ratio=reset_ratio)
    self._init_suite(
      suite_env.identity("craftax", name, shown),
      num_envs,
      observations.array_space(self.example_raw_obs(), (space.low, space.high)),
      gymnasium.spaces.Discrete(int(self.env.num_actions)),
      self.env_params.max_timesteps,
      reset_ratio=reset_ratio,
    )

  def reset_one(self, key: jax.Array):
    obs, state = self.env.reset(key, self.env_params)
    return state, obs

  def step_one(self, key: jax.Array, state: Any, action: jax.Array):
    obs, state, reward, done, _ = self.env.step(key, state, action, self.env_params)
    terminated = self.env.is_terminal(state, self._no_time_limit)
    return state, obs, reward, terminated, done & ~terminated

  def observe(self, raw_obs: jax.Array) -> jax.Array:
    return observations.as_float(raw_obs)


def make(name: str, num_envs: int = 1, **kwargs: Any) -> CraftaxEnv:
  return CraftaxEnv(name, num_envs, **kwargs)
