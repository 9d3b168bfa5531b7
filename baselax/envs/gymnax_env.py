"""The gym adapter: a gymnax environment in ``gymnasium.vector.VectorEnv`` clothes.

``GymnaxEnv`` serves two audiences:

* gym users get a ``gymnasium.vector.VectorEnv`` (numpy in, numpy out, the
  gymnasium 1.x vector signature, same-step autoreset) over any gymnax
  ``Environment`` instance, including their own subclasses;
* the Anakin trainer gets the pure, jittable functional core,
  :meth:`GymnaxEnv.functional_reset` and :meth:`GymnaxEnv.functional_step`,
  which it compiles into its ``lax.scan``.

Both paths run the same code, so what a gym user sees is what the trainer
trains on.
"""

from __future__ import annotations

from typing import Any

import gymnax
import jax
import jax.numpy as jnp
from gymnax.environments import environment as gymnax_environment
from gymnax.wrappers.purerl import GymnaxWrapper

from baselax.envs import spaces as spaces_lib
from baselax.envs.protocol import EnvStep, JaxEnv, JaxVectorEnv, check_num_envs
from baselax.errors import ConfigError

__all__ = ["EnvStep", "GymnaxEnv", "check_num_envs", "make", "registered_ids"]


class GymnaxEnv(JaxVectorEnv):
  """A ``gymnasium.vector.VectorEnv`` over ``num_envs`` copies of a gymnax env.

  Args:
    env: a gymnax ``Environment`` instance (e.g. from ``gymnax.make`` or your
      own subclass), or a gymnax wrapper of one (``gymnax.wrappers``).
    env_params: its ``EnvParams``; ``None`` uses ``env.default_params``.
    num_envs: number of parallel copies stepped by the gym API.

  One implementation of :class:`~baselax.envs.protocol.JaxEnv`: gymnax
  already separates ``terminated`` and ``truncated`` and reports the final
  observation, so the adapter only batches. ``env_id`` is the gymnax env's
  ``name``; ``max_episode_steps`` its ``env_params.max_steps_in_episode``;
  ``min_truncation_interval`` the same, or 1 for an env that overrides
  gymnax's ``is_truncated`` (its truncations may come at any step).

  The gym API follows gymnasium 1.x with ``AutoresetMode.SAME_STEP``: when an
  episode ends, ``step`` returns the first observation of the next episode in
  ``obs``, and the true final observation in ``info["final_obs"]`` (an object
  array, ``None`` where the episode goes on) with the mask ``info["_final_obs"]``.
  """

  has_action_mask = False

  def __init__(
    self, env: gymnax_environment.Environment, env_params: Any = None, num_envs: int = 1
  ):
    if not isinstance(env, (gymnax_environment.Environment, GymnaxWrapper)):
      raise TypeError(
        f"GymnaxEnv wraps a gymnax Environment instance, got "
        f"{type(env).__name__}. Use baselax.envs.make('CartPole-v1') for a "
        f"registered id, or pass an instance of your gymnax.environments."
        f"environment.Environment subclass."
      )
    check_num_envs(num_envs)
    self.env = env
    self.env_params = env.default_params if env_params is None else env_params
    self.env_id = env.name
    limit = getattr(self.env_params, "max_steps_in_episode", None)
    self.max_episode_steps = None if limit is None else int(limit)
    # gymnax's own is_truncated (time >= max_steps_in_episode, time counted
    # from 0 at reset) truncates max_episode_steps apart; an env that
    # overrides it may truncate at any step.
    own_rule = (
      not isinstance(env, gymnax_environment.Environment)
      or type(env).is_truncated is gymnax_environment.Environment.is_truncated
    )
    self.min_truncation_interval = self.max_episode_steps if own_rule else 1

    example_obs, _ = jax.eval_shape(self.env.reset, jax.random.PRNGKey(1), self.env_params)
    self._init_vector(
      spaces_lib.to_gymnasium_space(self.env.observation_space(self.env_params), example_obs),
      spaces_lib.to_gymnasium_space(self.env.action_space(self.env_params)),
      num_envs,
    )

  # ---------------------------------------------------------------------------
  # The pure functional core (what the Anakin trainer compiles).
  # ---------------------------------------------------------------------------

  def functional_reset(self, key: jax.Array, num_envs: int | None = None) -> tuple[jax.Array, Any]:
    """Resets ``num_envs`` envs (default ``self.num_envs``); pure and jittable.

    Args:
      key: a PRNG key; split into one key per env.
      num_envs: batch size (static).

    Returns:
      ``(obs, state)`` with leading axis ``num_envs``.
    """
    n = self.num_envs if num_envs is None else num_envs
    keys = jax.random.split(key, n)
    return jax.vmap(self.env.reset, in_axes=(0, None))(keys, self.env_params)

  def functional_step(self, key: jax.Array, state: Any, actions: jax.Array) -> tuple[Any, EnvStep]:
    """Steps a batch of envs with auto-reset; pure and jittable.

    Args:
      key: a PRNG key; split into one key per env.
      state: batched gymnax env state, leading axis ``N``.
      actions: ``(N, *action_shape)``.

    Returns:
      ``(next_state, EnvStep)``; terminated and truncated are kept apart and
      ``EnvStep.final_obs`` holds the true observation before auto-reset.
    """
    n = jax.tree_util.tree_leaves(state)[0].shape[0]
    keys = jax.random.split(key, n)
    obs, state, reward, terminated, truncated, info = jax.vmap(
      self.env.step, in_axes=(0, 0, 0, None)
    )(keys, state, actions, self.env_params)
    return state, EnvStep(
      obs=obs,
      reward=reward.astype(jnp.float32),
      terminated=terminated.astype(jnp.bool_),
      # gymnax reports truncated=True also when the last step terminated;
      # a terminal transition never bootstraps, so keep the flags disjoint.
      truncated=jnp.logical_and(truncated, jnp.logical_not(terminated)),
      final_obs=info["final_observation"],
    )

  def __repr__(self) -> str:
    return (
      f"{type(self).__name__}({self.env_id}, num_envs={self.num_envs}, "
      f"obs={self.single_observation_space}, "
      f"action={self.single_action_space})"
    )


def registered_ids() -> tuple[str, ...]:
  """All environment ids gymnax can make."""
  return tuple(gymnax.registered_envs)


def make(env_id: str, num_envs: int = 1, **env_kwargs: Any) -> GymnaxEnv:
  """Makes a :class:`GymnaxEnv` for a registered gymnax id.

  Args:
    env_id: e.g. ``"CartPole-v1"`` or ``"Breakout-MinAtar"``; see
      :func:`registered_ids`.
    num_envs: number of parallel copies for the gym API.
    **env_kwargs: forwarded to ``gymnax.make`` (environment constructor args).

  Raises:
    ValueError: for an unknown id (the message lists the valid ones) or
      ``num_envs < 1``.
  """
  if env_id not in gymnax.registered_envs:
    raise ConfigError(
      f"Unknown gymnax env_id {env_id!r}. Valid ids: {', '.join(gymnax.registered_envs)}."
    )
  check_num_envs(num_envs)
  env, env_params = gymnax.make(env_id, **env_kwargs)
  return GymnaxEnv(env, env_params, num_envs=num_envs)


def check_env(env: Any) -> JaxEnv:
  """The Anakin trainer needs a JAX-native env: any implementation of the env
  protocol :class:`~baselax.envs.JaxEnv` (``GymnaxEnv``, the suite adapters of
  ``baselax.envs.make``, your own), or a raw gymnax env (wrapped in a
  ``GymnaxEnv``)."""
  if isinstance(env, JaxEnv):
    return env
  if isinstance(env, gymnax_environment.Environment):
    return GymnaxEnv(env)
  raise TypeError(
    f"The Anakin trainer compiles the environment into its scan, so it needs "
    f"a JAX-native env implementing baselax.envs.JaxEnv (pure "
    f"functional_reset/functional_step, single spaces, max_episode_steps, "
    f"env_id, has_action_mask), got {type(env).__name__}. Make one with "
    f"baselax.envs.make('CartPole-v1') or make('navix:Navix-Empty-5x5-v0'), or "
    f"baselax.envs.GymnaxEnv(my_gymnax_env, env_params). Environments not "
    f"written in JAX (gymnasium, Atari) need a host loop instead."
  )
