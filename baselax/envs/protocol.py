"""The environment protocol: what the Anakin trainer needs of an environment.

The trainer compiles an environment into its ``lax.scan``, so it needs the
environment as pure functions of explicit state. Any object with the members
of :class:`JaxEnv` trains, whatever suite it comes from:

* ``functional_reset(key, num_envs) -> (obs, env_state)`` and
  ``functional_step(key, env_state, actions) -> (env_state, EnvStep)``:
  pure and jittable, batched over a leading env axis ``N``, with same-step
  auto-reset (an env whose episode ended starts its next one in the same
  step) and the true final observation kept in :attr:`EnvStep.final_obs`;
* ``single_observation_space`` / ``single_action_space``: ONE env's spaces,
  as gymnasium spaces. Observations are one array per env (structured ones
  are converted by the suite's adapter, see :mod:`baselax.envs.observations`);
* ``max_episode_steps``: the env's own episode step limit (``None``: none);
* ``env_id``: an identity string, stored with checkpoints so a run cannot be
  resumed on another env (for ids made by :func:`baselax.envs.make`, the id);
* ``has_action_mask``: the last ``num_actions`` entries of every observation
  are the valid-action mask (1 valid, 0 invalid); agents that cannot honour
  it are refused before compiling (``AgentContract.action_mask``).

``truncated`` means the episode was cut by the time limit, so truncations of
one env are at least ``max_episode_steps`` steps apart; an env whose
truncations can come sooner says so with an optional
``min_truncation_interval`` (the replay sizes its store of final
observations by it: :func:`truncation_interval`).

:class:`JaxVectorEnv` is the ``gymnasium.vector.VectorEnv`` view of any
implementation (numpy in and out, same-step autoreset): ``GymnaxEnv`` and
the suite adapters subclass it, and :func:`vector_env` wraps any other
implementation of the protocol.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium.vector import AutoresetMode


class EnvStep(NamedTuple):
  """One batched environment transition; leading axis = envs ``(N, ...)``.

  Attributes:
    obs: observation to act on next, ``(N, *obs_shape)``; after an episode
      ends this is already the first observation of the next episode
      (the env auto-resets in the same step).
    reward: ``(N,)`` float32.
    terminated: ``(N,)`` bool, the episode reached a terminal state (no
      bootstrapping).
    truncated: ``(N,)`` bool, the episode was cut by the time limit (the
      transition bootstraps from ``final_obs``); never set together with
      ``terminated``.
    final_obs: ``(N, *obs_shape)``, the true observation reached by this
      step, before any auto-reset. Equal to ``obs`` where the episode goes on.
  """

  obs: jax.Array
  reward: jax.Array
  terminated: jax.Array
  truncated: jax.Array
  final_obs: jax.Array


@runtime_checkable
class JaxEnv(Protocol):
  """What the Anakin trainer needs of an environment (see the module doc).

  ``isinstance(env, JaxEnv)`` checks that the members exist; the trainer
  asks for this protocol, never for a class.
  """

  single_observation_space: gymnasium.Space
  single_action_space: gymnasium.Space
  max_episode_steps: int | None
  env_id: str
  has_action_mask: bool

  def functional_reset(self, key: jax.Array, num_envs: int | None = None) -> tuple[jax.Array, Any]:
    """``(obs (N, *obs_shape), env_state)`` of ``num_envs`` fresh episodes."""

  def functional_step(self, key: jax.Array, state: Any, actions: jax.Array) -> tuple[Any, EnvStep]:
    """One step of every env ``(N,)`` with same-step auto-reset."""


def check_num_envs(num_envs: Any) -> None:
  if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
    raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}.")


def truncation_interval(env: Any) -> int:
  """The fewest env steps between two truncations of one env (>= 1).

  ``env.min_truncation_interval`` if the env declares it, else its
  ``max_episode_steps`` (``truncated`` means "cut by the time limit"), else 1:
  any step may be truncated (the replay's side store is then as large as
  the buffer: exact, at the cost of a second copy).
  """
  declared = getattr(env, "min_truncation_interval", None)
  if declared is None:
    declared = getattr(env, "max_episode_steps", None)
  return 1 if declared is None else max(1, int(declared))


def action_mask(obs: jax.Array, num_actions: int) -> jax.Array:
  """The valid-action mask ``(..., num_actions)`` bool of observations
  ``(..., D)`` of an env with ``has_action_mask``: their last entries."""
  return jnp.asarray(obs)[..., -num_actions:] > 0.5


class JaxVectorEnv(gymnasium.vector.VectorEnv):
  """The ``gymnasium.vector.VectorEnv`` view of a :class:`JaxEnv`.

  Subclasses implement the functional core and set ``num_envs``, the single
  and batched spaces, ``max_episode_steps``, ``env_id`` and
  ``has_action_mask``, then call :meth:`_init_vector`; this class gives them
  the gym API over that core, so what a gym user sees is what the trainer
  trains on.

  The gym API follows gymnasium 1.x with ``AutoresetMode.SAME_STEP``: when an
  episode ends, ``step`` returns the first observation of the next episode in
  ``obs``, and the true final observation in ``info["final_obs"]`` (an object
  array, ``None`` where the episode goes on) with the mask ``info["_final_obs"]``.
  """

  metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
  env_id: str
  max_episode_steps: int | None = None
  has_action_mask: bool = False

  def _init_vector(
    self,
    single_observation_space: gymnasium.Space,
    single_action_space: gymnasium.Space,
    num_envs: int,
  ) -> None:
    """Sets the spaces and the jitted core the gym methods call."""
    check_num_envs(num_envs)
    self.num_envs = int(num_envs)
    self.single_observation_space = single_observation_space
    self.single_action_space = single_action_space
    self.observation_space = gymnasium.vector.utils.batch_space(
      single_observation_space, self.num_envs
    )
    self.action_space = gymnasium.vector.utils.batch_space(single_action_space, self.num_envs)
    self._jit_reset = jax.jit(self.functional_reset, static_argnums=1)
    self._jit_step = jax.jit(self.functional_step)
    self._key: jax.Array | None = None
    self._state: Any = None

  def functional_reset(self, key: jax.Array, num_envs: int | None = None) -> tuple[jax.Array, Any]:
    raise NotImplementedError

  def functional_step(self, key: jax.Array, state: Any, actions: jax.Array) -> tuple[Any, EnvStep]:
    raise NotImplementedError

  # ---------------------------------------------------------------------------
  # The gymnasium vector API (numpy in, numpy out).
  # ---------------------------------------------------------------------------

  def reset(
    self, *, seed: int | None = None, options: dict[str, Any] | None = None
  ) -> tuple[np.ndarray, dict[str, Any]]:
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

  def step(
    self, actions: Any
  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Steps all envs; see the class docstring for the autoreset convention."""
    if self._state is None or self._key is None:
      raise RuntimeError(
        f"{type(self).__name__}.step called before reset(); call env.reset(seed=...) first."
      )
    actions = self._check_actions(actions)
    self._key, step_key = jax.random.split(self._key)
    self._state, out = self._jit_step(step_key, self._state, actions)
    out = jax.device_get(out)
    done = np.logical_or(out.terminated, out.truncated)
    info: dict[str, Any] = {}
    if done.any():
      final_obs = np.full(self.num_envs, None, dtype=object)
      for i in np.flatnonzero(done):
        final_obs[i] = out.final_obs[i]
      info["final_obs"], info["_final_obs"] = final_obs, done
    return out.obs, out.reward, out.terminated, out.truncated, info

  def _check_actions(self, actions: Any) -> jax.Array:
    space = self.single_action_space
    actions = np.asarray(actions)
    expected = (self.num_envs, *(space.shape or ()))
    if actions.shape != expected:
      raise ValueError(
        f"{type(self).__name__}.step expects actions of shape {expected} "
        f"(num_envs={self.num_envs}), got {actions.shape}. Pass one action per "
        f"env, e.g. env.action_space.sample()."
      )
    if isinstance(space, gymnasium.spaces.Discrete):
      if not np.issubdtype(actions.dtype, np.integer):
        raise ValueError(f"Discrete actions must be integers, got dtype {actions.dtype}.")
      start, n = int(space.start), int(space.n)
      if actions.min() < start or actions.max() >= start + n:
        raise ValueError(
          f"Actions out of range: the action space is {space} (valid "
          f"actions {start}..{start + n - 1}), got "
          f"{actions.tolist()}."
        )
      actions = actions.astype(np.int32)
    elif isinstance(space, gymnasium.spaces.Box) and not np.all(np.isfinite(actions)):
      raise ValueError(f"Actions must be finite, got {actions.tolist()}.")
    return jnp.asarray(actions)

  def __repr__(self) -> str:
    return (
      f"{type(self).__name__}({self.env_id}, num_envs={self.num_envs}, "
      f"obs={self.single_observation_space}, "
      f"action={self.single_action_space})"
    )


class _VectorView(JaxVectorEnv):
  """:class:`JaxVectorEnv` over a protocol implementation that is not one."""

  def __init__(self, env: JaxEnv, num_envs: int):
    self.env = env
    self.env_id = env.env_id
    self.max_episode_steps = env.max_episode_steps
    self.has_action_mask = bool(env.has_action_mask)
    self._init_vector(env.single_observation_space, env.single_action_space, num_envs)

  def functional_reset(self, key, num_envs=None):
    return self.env.functional_reset(key, self.num_envs if num_envs is None else num_envs)

  def functional_step(self, key, state, actions):
    return self.env.functional_step(key, state, actions)


def vector_env(env: JaxEnv, num_envs: int | None = None) -> JaxVectorEnv:
  """The gym ``VectorEnv`` view of any :class:`JaxEnv` (itself if it is one).

  ``num_envs``: copies the gym API steps (default: the env's own
  ``num_envs``, else 1).
  """
  if isinstance(env, JaxVectorEnv) and num_envs in (None, env.num_envs):
    return env
  if not isinstance(env, JaxEnv):
    raise TypeError(
      f"vector_env needs an implementation of baselax.envs.JaxEnv, got {type(env).__name__}."
    )
  return _VectorView(env, int(getattr(env, "num_envs", 1)) if num_envs is None else num_envs)
