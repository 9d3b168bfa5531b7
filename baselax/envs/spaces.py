"""Conversion between gymnax and gymnasium spaces, and reading spaces off gym-like envs."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np


def to_gymnasium_space(space: Any, example: Any = None) -> gymnasium.Space:
  """Converts a gymnax space to the equivalent gymnasium space.

  Args:
    space: a gymnax ``Discrete``, ``Box``, ``Dict`` or ``Tuple`` space.
    example: optional ``jax.ShapeDtypeStruct`` (or pytree of them) of what the
      env really emits. gymnax's declared dtypes are not always what it returns
      (``Catch-bsuite`` declares int32 and emits float32), so when given, shape
      and dtype come from the example and only the bounds from the space.

  Returns:
    A gymnasium space.
  """
  # Imported here: importing gymnax starts JAX's backend, which must wait for
  # jax.distributed.initialize in multi-process runs (agents import this module).
  from gymnax.environments import spaces as gymnax_spaces

  if isinstance(space, gymnax_spaces.Discrete):
    return gymnasium.spaces.Discrete(int(space.n))
  if isinstance(space, gymnax_spaces.Box):
    shape = tuple(example.shape) if example is not None else tuple(space.shape)
    dtype = np.dtype(example.dtype) if example is not None else np.dtype(space.dtype)
    low = np.broadcast_to(np.asarray(space.low, dtype=dtype), shape)
    high = np.broadcast_to(np.asarray(space.high, dtype=dtype), shape)
    return gymnasium.spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
  if isinstance(space, gymnax_spaces.Dict):
    return gymnasium.spaces.Dict(
      {
        k: to_gymnasium_space(v, None if example is None else example[k])
        for k, v in space.spaces.items()
      }
    )
  if isinstance(space, gymnax_spaces.Tuple):
    return gymnasium.spaces.Tuple(
      tuple(
        to_gymnasium_space(v, None if example is None else example[i])
        for i, v in enumerate(space.spaces)
      )
    )
  raise TypeError(
    f"Cannot convert gymnax space {space!r} to gymnasium: only Discrete, Box, "
    "Dict and Tuple are supported."
  )


def env_spaces(env: Any) -> tuple[gymnasium.Space, gymnasium.Space]:
  """Returns ``(observation_space, action_space)`` of ONE environment.

  Vector envs (``GymnaxEnv``, ``gymnasium.vector.VectorEnv``) expose the single
  env's spaces as ``single_observation_space``/``single_action_space``; plain
  ``gymnasium.Env`` objects as ``observation_space``/``action_space``.

  Raises:
    TypeError: if ``env`` has neither pair of attributes.
  """
  obs_space = getattr(env, "single_observation_space", None)
  act_space = getattr(env, "single_action_space", None)
  if obs_space is None or act_space is None:
    obs_space = getattr(env, "observation_space", None)
    act_space = getattr(env, "action_space", None)
  if not isinstance(obs_space, gymnasium.Space) or not isinstance(act_space, gymnasium.Space):
    raise TypeError(
      f"env must be gym-like (a baselax.envs.GymnaxEnv, a gymnasium.Env or a "
      f"gymnasium.vector.VectorEnv) with gymnasium observation and action "
      f"spaces; got {type(env).__name__}. For a gymnax environment use "
      f"baselax.envs.make(env_id) or baselax.envs.GymnaxEnv(gymnax_env)."
    )
  return obs_space, act_space


def dummy_observation(space: gymnasium.Space, batch_size: int = 1) -> np.ndarray:
  """A zero observation batch ``(batch_size, *space.shape)`` used to init networks."""
  if space.shape is None:
    raise TypeError(
      f"Observation space {space!r} has no fixed shape; baselax networks need array observations."
    )
  return np.zeros((batch_size, *space.shape), dtype=space.dtype or np.float32)
