"""Jumanji (Bonnet et al. 2023, "Jumanji: a diverse suite of scalable
reinforcement learning environments in JAX", arXiv:2306.09884).
Ids ``"jumanji:Snake-v1"``.

* Observation: Jumanji's named tuples (``Observation(grid, step_count,
  action_mask)`` for Snake) become one float32 vector: the leaves in field
  order, flattened, those with finite declared bounds scaled to ``[0, 1]``,
  and the ``action_mask`` leaf, when it has one entry per action, LAST (see
  :mod:`baselax.envs.observations`); the env then has ``has_action_mask``.
* Termination and truncation: Jumanji's ``TimeStep``: a ``LAST`` step with
  discount 0 terminated, a ``LAST`` step with a non-zero discount was
  truncated (``jumanji.types.truncation``). Jumanji's single-agent envs end
  at their ``time_limit`` with discount 0, a termination as Jumanji reports
  it (their observations carry the step count, so the time left is part of
  the state); only envs that return ``truncation`` truncate.
* Auto-reset: ``Environment.step`` does none (that is ``AutoResetWrapper``'s
  job); the adapter resets in the same step.
* Single-agent envs only: a multi-agent env (a reward per agent) is refused.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import jumanji
from jumanji import specs

from baselax.envs import observations, suite_env
from baselax.errors import ConfigError


def registered_ids() -> tuple[str, ...]:
  """Jumanji's env names (without the ``jumanji:`` prefix)."""
  return tuple(sorted(jumanji.registered_environments()))


def spec_bounds(spec: Any, prefix: str = "") -> dict[str, observations.Bounds]:
  """``{leaf name: (low, high)}`` of the bounded arrays of a (nested) spec."""
  if isinstance(spec, specs.BoundedArray):
    return {prefix: (spec.minimum, spec.maximum)}
  if isinstance(spec, specs.Array):
    return {}
  out = {}
  for name, child in vars(spec).items():
    if isinstance(child, specs.Spec):
      out.update(spec_bounds(child, f"{prefix}.{name}" if prefix else name))
  return out


class JumanjiEnv(suite_env.SuiteEnv):
  """A single-agent Jumanji environment behind the baselax env protocol.

  Args:
    env: a Jumanji id, e.g. ``"Snake-v1"``, or a ``jumanji.Environment``
      instance (your own, or a wrapped one).
    num_envs: copies stepped by the gym API.
    reset_ratio: envs per fresh reset per step (``None``: one per env; see
      :mod:`baselax.envs.suite_env`).
    **kwargs: forwarded to ``jumanji.make`` (the env's constructor), with an id.
  """

  def __init__(
    self,
    env: str | jumanji.Environment,
    num_envs: int = 1,
    *,
    reset_ratio: int | None = None,
    **kwargs: Any,
  ):
    if isinstance(env, str):
      name, self.env = env, jumanji.make(env, **kwargs)
    else:
      name, self.env = type(env).__name__, env
      # Jumanji's registered single-agent envs never truncate; a wrapped or
      # custom env may, at any step (the replay sizes its store of final
      # observations by this, baselax.envs.protocol.truncation_interval).
      self.min_truncation_interval = 1
    if tuple(self.env.reward_spec.shape) != ():
      raise ConfigError(
        f"jumanji:{name} is a multi-agent env (rewards of shape "
        f"{tuple(self.env.reward_spec.shape)}); baselax trains single-agent envs. "
        f"Pick one of jumanji's single-agent ids, e.g. jumanji:Snake-v1."
      )
    action_space = specs.jumanji_specs_to_gym_spaces(self.env.action_spec)
    num_actions = (
      int(action_space.n) if isinstance(action_space, gymnasium.spaces.Discrete) else None
    )
    self.layout = observations.flattener(
      self.example_raw_obs(),
      spec_bounds(self.env.observation_spec),
      mask_name="action_mask",
      num_actions=num_actions,
    )
    env_id = suite_env.identity("jumanji", name, suite_env.shown(kwargs, reset_ratio=reset_ratio))
    self._init_suite(
      env_id,
      num_envs,
      self.layout.space,
      action_space,
      getattr(self.env.unwrapped, "time_limit", None),
      self.layout.has_action_mask,
      reset_ratio=reset_ratio,
    )

  def reset_one(self, key: jax.Array):
    state, timestep = self.env.reset(key)
    return state, timestep.observation

  def step_one(self, key: jax.Array, state: Any, action: jax.Array):
    del key  # Jumanji keeps its key in the state
    state, timestep = self.env.step(state, action)
    last = timestep.last()
    ended_by_task = jnp.asarray(timestep.discount) == 0.0
    return (
      state,
      timestep.observation,
      timestep.reward,
      last & ended_by_task,
      last & ~ended_by_task,
    )

  def observe(self, raw_obs: Any) -> jax.Array:
    return self.layout.flatten(raw_obs)


def make(name: str, num_envs: int = 1, **kwargs: Any) -> JumanjiEnv:
  return JumanjiEnv(name, num_envs, **kwargs)
