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

from typing import Any, Dict, NamedTuple, Optional, Tuple

import gymnasium
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnax.environments import environment as gymnax_environment

from baselax.envs import spaces as spaces_lib
from baselax.errors import ConfigError


class EnvStep(NamedTuple):
  """One batched environment transition; leading axis = envs ``(N, ...)``.

  Attributes:
    obs: observation to act on next, ``(N, *obs_shape)``; after an episode
      ends this is already the first observation of the next episode
      (gymnax auto-resets in the same step).
    reward: ``(N,)`` float32.
    terminated: ``(N,)`` bool, the episode reached a terminal state (no
      bootstrapping).
    truncated: ``(N,)`` bool, the episode was cut by the time limit (the
      transition bootstraps from ``final_obs``).
    final_obs: ``(N, *obs_shape)``, the true observation reached by this
      step, before any auto-reset. Equal to ``obs`` where the episode goes on.
  """
  obs: jax.Array
  reward: jax.Array
  terminated: jax.Array
  truncated: jax.Array
  final_obs: jax.Array


def check_num_envs(num_envs: Any) -> None:
  if (isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer))
      or num_envs < 1):
    raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}.")


class GymnaxEnv(gymnasium.vector.VectorEnv):
  """A ``gymnasium.vector.VectorEnv`` over ``num_envs`` copies of a gymnax env.

  Args:
    env: a gymnax ``Environment`` instance (e.g. from ``gymnax.make`` or your
      own subclass).
    env_params: its ``EnvParams``; ``None`` uses ``env.default_params``.
    num_envs: number of parallel copies stepped by the gym API.

  The gym API follows gymnasium 1.x with ``AutoresetMode.SAME_STEP``: when an
  episode ends, ``step`` returns the first observation of the next episode in
  ``obs``, and the true final observation in ``info["final_obs"]`` (an object
  array, ``None`` where the episode goes on) with the mask ``info["_final_obs"]``.
  """

  metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

  def __init__(self,
               env: gymnax_environment.Environment,
               env_params: Any = None,
               num_envs: int = 1):
    if not isinstance(env, gymnax_environment.Environment):
      raise TypeError(
          f"GymnaxEnv wraps a gymnax Environment instance, got "
          f"{type(env).__name__}. Use baselax.envs.make('CartPole-v1') for a "
          f"registered id, or pass an instance of your gymnax.environments."
          f"environment.Environment subclass.")
    check_num_envs(num_envs)
    self.env = env
    self.env_params = env.default_params if env_params is None else env_params
    self.num_envs = int(num_envs)

    example_obs, _ = jax.eval_shape(self.env.reset, jax.random.PRNGKey(1),
                                    self.env_params)
    self.single_observation_space = spaces_lib.to_gymnasium_space(
        self.env.observation_space(self.env_params), example_obs)
    self.single_action_space = spaces_lib.to_gymnasium_space(
        self.env.action_space(self.env_params))
    self.observation_space = gymnasium.vector.utils.batch_space(
        self.single_observation_space, self.num_envs)
    self.action_space = gymnasium.vector.utils.batch_space(
        self.single_action_space, self.num_envs)

    self._jit_reset = jax.jit(self.functional_reset, static_argnums=1)
    self._jit_step = jax.jit(self.functional_step)
    self._key: Optional[jax.Array] = None
    self._state: Any = None

  # ---------------------------------------------------------------------------
  # The pure functional core (what the Anakin trainer compiles).
  # ---------------------------------------------------------------------------

  def functional_reset(self, key: jax.Array, num_envs: Optional[int] = None
                       ) -> Tuple[jax.Array, Any]:
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

  def functional_step(self, key: jax.Array, state: Any, actions: jax.Array
                      ) -> Tuple[Any, EnvStep]:
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
        self.env.step, in_axes=(0, 0, 0, None))(keys, state, actions,
                                                self.env_params)
    return state, EnvStep(
        obs=obs,
        reward=reward.astype(jnp.float32),
        terminated=terminated.astype(jnp.bool_),
        # gymnax reports truncated=True also when the last step terminated;
        # a terminal transition never bootstraps, so keep the flags disjoint.
        truncated=jnp.logical_and(truncated, jnp.logical_not(terminated)),
        final_obs=info["final_observation"])

  # ---------------------------------------------------------------------------
  # The gymnasium vector API (numpy in, numpy out).
  # ---------------------------------------------------------------------------

  def reset(self, *, seed: Optional[int] = None,
            options: Optional[Dict[str, Any]] = None
            ) -> Tuple[np.ndarray, Dict[str, Any]]:
    """Resets all envs. ``seed`` makes the whole episode sequence reproducible."""
    del options
    super().reset(seed=seed)
    if seed is None and self._key is not None:
      key = self._key
    else:
      seed = int(self.np_random.integers(2**31 - 1)) if seed is None else seed
      key = jax.random.PRNGKey(seed)
    self._key, reset_key = jax.random.split(key)
    obs, self._state = self._jit_reset(reset_key, self.num_envs)
    return np.asarray(obs), {}

  def step(self, actions: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray,
                                        np.ndarray, Dict[str, Any]]:
    """Steps all envs; see the class docstring for the autoreset convention."""
    if self._state is None:
      raise RuntimeError("GymnaxEnv.step called before reset(); call "
                         "env.reset(seed=...) first.")
    actions = self._check_actions(actions)
    self._key, step_key = jax.random.split(self._key)
    self._state, out = self._jit_step(step_key, self._state, actions)
    out = jax.device_get(out)
    done = np.logical_or(out.terminated, out.truncated)
    info: Dict[str, Any] = {}
    if done.any():
      final_obs = np.full(self.num_envs, None, dtype=object)
      for i in np.flatnonzero(done):
        final_obs[i] = out.final_obs[i]
      info["final_obs"], info["_final_obs"] = final_obs, done
    return out.obs, out.reward, out.terminated, out.truncated, info

  def _check_actions(self, actions: Any) -> jax.Array:
    space = self.single_action_space
    actions = np.asarray(actions)
    expected = (self.num_envs, *space.shape)
    if actions.shape != expected:
      raise ValueError(
          f"GymnaxEnv.step expects actions of shape {expected} (num_envs="
          f"{self.num_envs}), got {actions.shape}. Pass one action per env, "
          f"e.g. env.action_space.sample().")
    if isinstance(space, gymnasium.spaces.Discrete):
      if not np.issubdtype(actions.dtype, np.integer):
        raise ValueError(f"Discrete actions must be integers, got dtype "
                         f"{actions.dtype}.")
      if actions.min() < space.start or actions.max() >= space.start + space.n:
        raise ValueError(
            f"Actions out of range: the action space is {space} (valid "
            f"actions {space.start}..{space.start + space.n - 1}), got "
            f"{actions.tolist()}.")
      actions = actions.astype(np.int32)
    elif isinstance(space, gymnasium.spaces.Box):
      if not np.all(np.isfinite(actions)):
        raise ValueError(f"Actions must be finite, got {actions.tolist()}.")
    return jnp.asarray(actions)

  def __repr__(self) -> str:
    return (f"GymnaxEnv({self.env.name}, num_envs={self.num_envs}, "
            f"obs={self.single_observation_space}, "
            f"action={self.single_action_space})")


def registered_ids() -> Tuple[str, ...]:
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
        f"Unknown gymnax env id {env_id!r}. Valid ids: "
        f"{', '.join(gymnax.registered_envs)}.")
  check_num_envs(num_envs)
  env, env_params = gymnax.make(env_id, **env_kwargs)
  return GymnaxEnv(env, env_params, num_envs=num_envs)
