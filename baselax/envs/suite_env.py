"""The shared part of the suite adapters: batching and same-step auto-reset.

A suite adapter (``craftax_env``, ``jumanji_env``, ``navix_env``,
``xminigrid_env``) subclasses :class:`SuiteEnv` and writes three pure
functions of ONE env, without auto-reset:

* ``reset_one(key) -> (state, raw_obs)``;
* ``step_one(key, state, action) -> (state, raw_obs, reward, terminated,
  truncated)``, with the flags in the suite's own semantics (its termination
  and its time limit kept apart);
* ``observe(raw_obs) -> obs``, the one array the trainer takes
  (:mod:`baselax.envs.observations`).

:class:`SuiteEnv` batches them over envs and resets an env whose episode
ended in the same step, keeping the observation the step reached as
``EnvStep.final_obs``. Every suite is stepped without its own auto-reset
(Craftax's ``NoAutoReset`` envs, Navix's ``_step``, Jumanji's and
XLand-MiniGrid's plain ``step``), so that observation is the true final one.

Resets are computed every step for every env (under ``vmap`` a per-env
condition runs both sides anyway) and taken where an episode ended. Where a
reset costs far more than a step (Craftax generates a world),
``reset_ratio=K`` computes only
``ceil(N / K)`` fresh resets per step and hands them to the envs that ended,
in order; if more envs end in one step than there are fresh resets, the
extra ones start from the same state as an earlier one (the "optimistic
resets" of the Craftax authors' baselines). ``reset_ratio=None`` (the
default, except for Craftax) gives every env its own reset.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import jax
import jax.numpy as jnp

from baselax.envs.protocol import EnvStep, JaxVectorEnv
from baselax.errors import ConfigError


def select_tree(done: jax.Array, on_done: Any, otherwise: Any) -> Any:
  """Per env, ``on_done`` where ``done`` ``(N,)`` else ``otherwise`` (pytrees, leading axis N)."""

  def select(a, b):
    return jnp.where(done.reshape(done.shape + (1,) * (a.ndim - 1)), a, b)

  return jax.tree.map(select, on_done, otherwise)


def identity(suite: str, name: str, kwargs: Any) -> str:
  """``"suite:name"``, with the constructor arguments when there are any."""
  if not kwargs:
    return f"{suite}:{name}"
  args = ", ".join(f"{k}={v!r}" for k, v in sorted(kwargs.items()))
  return f"{suite}:{name}({args})"


def shown(kwargs: Any, **defaults_if_none: Any) -> Any:
  """``kwargs`` plus the keyword arguments of ``defaults_if_none`` that are
  not ``None`` (what :func:`identity` shows)."""
  return dict(kwargs, **{k: v for k, v in defaults_if_none.items() if v is not None})


class SuiteEnv(JaxVectorEnv):
  """A :class:`~baselax.envs.protocol.JaxEnv` (and gym ``VectorEnv``) from
  one env's pure ``reset_one``/``step_one``/``observe`` (see the module doc).

  Subclasses set ``self.env`` (the suite's env), then call
  :meth:`_init_suite`.
  """

  reset_ratio: int | None = None

  def _init_suite(
    self,
    env_id: str,
    num_envs: int,
    single_observation_space: gymnasium.Space,
    single_action_space: gymnasium.Space,
    max_episode_steps: int | None,
    has_action_mask: bool = False,
    reset_ratio: int | None = None,
  ) -> None:
    if reset_ratio is not None and (
      isinstance(reset_ratio, bool) or not isinstance(reset_ratio, int) or reset_ratio < 1
    ):
      raise ConfigError(
        f"reset_ratio must be an integer >= 1 (envs per fresh reset) "
        f"or None (a reset per env), got {reset_ratio!r}."
      )
    self.reset_ratio = reset_ratio
    self.env_id = env_id
    self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
    self.has_action_mask = bool(has_action_mask)
    self._init_vector(single_observation_space, single_action_space, num_envs)

  # --- what an adapter writes -------------------------------------------------

  def reset_one(self, key: jax.Array) -> tuple[Any, Any]:
    raise NotImplementedError

  def step_one(
    self, key: jax.Array, state: Any, action: jax.Array
  ) -> tuple[Any, Any, jax.Array, jax.Array, jax.Array]:
    raise NotImplementedError

  def observe(self, raw_obs: Any) -> jax.Array:
    raise NotImplementedError

  def example_raw_obs(self) -> Any:
    """One env's raw observation, abstractly (shapes and dtypes, no compute)."""
    return jax.eval_shape(
      lambda key: self.reset_one(key)[1], jax.ShapeDtypeStruct((2,), jnp.uint32)
    )

  # --- the functional core ----------------------------------------------------

  def functional_reset(self, key: jax.Array, num_envs: int | None = None) -> tuple[jax.Array, Any]:
    """``(obs (N, *obs_shape), state)`` of ``num_envs`` fresh episodes; pure."""
    n = self.num_envs if num_envs is None else num_envs
    state, raw = jax.vmap(self.reset_one)(jax.random.split(key, n))
    return jax.vmap(self.observe)(raw), state

  def functional_step(self, key: jax.Array, state: Any, actions: jax.Array) -> tuple[Any, EnvStep]:
    """Steps every env; an ended episode restarts in the same step; pure.

    Returns ``(state, EnvStep)`` with ``final_obs`` the observation the step
    reached (before the reset) and ``truncated`` never set with ``terminated``.
    """
    n = jax.tree.leaves(state)[0].shape[0]
    num_resets = n if self.reset_ratio is None else -(-n // self.reset_ratio)
    keys = jax.random.split(key, n + num_resets)
    step_keys, reset_keys = keys[:n], keys[n:]
    stepped, raw, reward, terminated, truncated = jax.vmap(self.step_one)(step_keys, state, actions)
    final_obs = jax.vmap(self.observe)(raw)
    terminated = jnp.asarray(terminated, jnp.bool_)
    truncated = jnp.logical_and(jnp.asarray(truncated, jnp.bool_), jnp.logical_not(terminated))
    done = jnp.logical_or(terminated, truncated)
    reset_state, reset_raw = jax.vmap(self.reset_one)(reset_keys)
    reset_obs = jax.vmap(self.observe)(reset_raw)
    if num_resets < n:  # the k-th env to end takes fresh reset k (mod num_resets)
      slot = (jnp.cumsum(done) - 1) % num_resets
      reset_state, reset_obs = jax.tree.map(lambda x: x[slot], (reset_state, reset_obs))
    obs = select_tree(done, reset_obs, final_obs)
    return select_tree(done, reset_state, stepped), EnvStep(
      obs=obs,
      reward=jnp.asarray(reward, jnp.float32),
      terminated=terminated,
      truncated=truncated,
      final_obs=final_obs,
    )
