"""How the replay stores one observation (``TrainingConfig.obs_storage``).

The replay buffer stores each observation once, encoded by an
:class:`ObsCodec` and decoded before the network sees it:

===========  ===============================================================
``float32``  float32 (the env's own dtype for every gymnax env)
``uint8``    one byte per value: integer values in [0, 255]
``bool``     0/1 values packed 8 per byte (``jnp.packbits``)
``auto``     the smallest of ``bool``, ``uint8`` that is exact, else the
             env's own dtype
===========  ===============================================================

A round trip is exact or refused: a compact storage needs the proof of
:mod:`baselax.replay.integers` that every observation is an integer in its
range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from baselax.errors import ConfigError
from baselax.replay.integers import proven_range, within
from baselax.training.config import OBS_STORAGES as STORAGES

#: Largest integer a float32 holds exactly (2^24).
_FLOAT32_EXACT = float(2**24)


class ObsCodec(NamedTuple):
  """How the replay stores one observation; see the module doc.

  Attributes:
    name: ``"float32"``, ``"uint8"``, ``"bool"`` or ``"native"`` (the env's
      own dtype, stored as it comes).
    encode: ``(..., *obs_shape) obs_dtype -> (..., *stored_shape) stored_dtype``.
    decode: the inverse (exact on every observation the env can emit).
    obs: the observation's ``jax.ShapeDtypeStruct`` (no batch axis).
    stored: the stored ``jax.ShapeDtypeStruct`` (no batch axis).
    stack: ``k`` of observations that are stacks of the last ``k`` frames
      (:func:`frame_codec`): only the newest frame of each step is stored, and
      the store rebuilds the stack from the steps before it; 1 otherwise.
  """

  name: str
  encode: Callable[[Any], Any]
  decode: Callable[[Any], Any]
  obs: Any
  stored: Any
  stack: int = 1

  @property
  def obs_bytes(self) -> int:
    return nbytes(self.obs)

  @property
  def stored_bytes(self) -> int:
    return nbytes(self.stored)


def nbytes(tree: Any) -> int:
  """Bytes of the arrays (or ``ShapeDtypeStruct``s) of ``tree``."""
  return int(sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def _lead(x: Any, ndim: int) -> tuple[int, ...]:
  """The leading (batch) axes of ``x`` in front of a ``ndim``-dimensional item."""
  return tuple(x.shape[: x.ndim - ndim])


def native_codec(obs: Any) -> ObsCodec:
  """Stores observations as they come (any pytree); named by the dtype of an array."""
  identity = lambda x: x  # noqa: E731
  name = np.dtype(obs.dtype).name if isinstance(obs, jax.ShapeDtypeStruct) else "native"
  return ObsCodec(name, identity, identity, obs, obs)


def cast_codec(obs: jax.ShapeDtypeStruct, dtype: Any, name: str) -> ObsCodec:
  """Stores each value cast to ``dtype`` (exact when every value fits it)."""
  dtype = np.dtype(dtype)
  return ObsCodec(
    name,
    lambda x: x.astype(dtype),
    lambda x: x.astype(obs.dtype),
    obs,
    jax.ShapeDtypeStruct(obs.shape, dtype),
  )


def bits_codec(obs: jax.ShapeDtypeStruct) -> ObsCodec:
  """Stores 0/1 values as bits, 8 per byte: ``(*shape) -> (ceil(size / 8),) uint8``."""
  size = math.prod(obs.shape)

  def encode(x):
    flat = x.reshape(*_lead(x, len(obs.shape)), size)
    return jnp.packbits(flat.astype(jnp.uint8), axis=-1)  # any nonzero is 1: values are 0/1

  def decode(packed):
    flat = jnp.unpackbits(packed, axis=-1, count=size)
    return flat.reshape(*packed.shape[:-1], *obs.shape).astype(obs.dtype)

  return ObsCodec("bool", encode, decode, obs, jax.ShapeDtypeStruct((-(-size // 8),), np.uint8))


def frame_codec(obs: jax.ShapeDtypeStruct) -> ObsCodec:
  """Stores the newest frame of a frame stack ``(k, *frame)`` (axis 0, ``k >= 2``).

  ``decode`` gives a frame back; the store (:mod:`~baselax.replay.store`)
  rebuilds a step's stack from the newest frames of it and the ``k - 1``
  steps before it, repeating an episode's first frame before its start (how
  gymnasium's ``FrameStackObservation`` pads, ``padding_type="reset"``). So
  each frame is stored once, not ``2k`` times (DQN's replay memory, Mnih et
  al. 2015). The trainer that adds must check that its observations are such
  stacks (``baselax.hostloop`` does, on every step).

  Raises:
    ConfigError: ``obs`` is not an array with a stack axis of 2 or more.
  """
  if not isinstance(obs, jax.ShapeDtypeStruct) or len(obs.shape) < 2 or obs.shape[0] < 2:
    shape = getattr(obs, "shape", type(obs).__name__)
    raise ConfigError(
      f"frame-stack storage needs observations stacked along axis 0, (k >= 2, *frame); "
      f"got {shape}. Store them whole (compact_frames=False)."
    )
  k, frame = obs.shape[0], obs.shape[1:]
  identity = lambda x: x  # noqa: E731

  def encode(x):
    return jnp.take(x, k - 1, axis=x.ndim - len(obs.shape))

  return ObsCodec("frames", encode, identity, obs, jax.ShapeDtypeStruct(frame, obs.dtype), k)


def observation_spec(env: Any) -> Any:
  """``jax.ShapeDtypeStruct`` (pytree) of one observation as the trainer gets it."""
  obs = jax.eval_shape(
    lambda key: env.functional_reset(key, 1)[0], jax.ShapeDtypeStruct((2,), jnp.uint32)
  )
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype), obs)


def obs_codec(storage: str, env: Any) -> ObsCodec:
  """The :class:`ObsCodec` of ``TrainingConfig.obs_storage`` for ``env``.

  Raises:
    ConfigError: a storage that could not hold every observation exactly,
      naming the space and the storages that would.
  """
  if storage not in STORAGES:
    raise ConfigError(f"obs_storage must be one of {', '.join(STORAGES)}, got {storage!r}.")
  obs = observation_spec(env)
  array = isinstance(obs, jax.ShapeDtypeStruct)
  dtype: Any = np.dtype(obs.dtype) if array else None  # (read for arrays only)
  if storage == "float32" and array and dtype == np.float32:
    return native_codec(obs)
  if storage == "auto" and not array:
    return native_codec(obs)
  values = proven_range(env) if array else None
  if storage == "auto":
    if within(values, 0, 1):
      return bits_codec(obs)
    if within(values, 0, 255) and dtype.itemsize > 1:
      return cast_codec(obs, np.uint8, "uint8")
    return native_codec(obs)
  exact = (
    array
    and {
      "float32": lambda: (
        (dtype.kind == "f" and dtype.itemsize <= 4)
        or within(values, -_FLOAT32_EXACT, _FLOAT32_EXACT)
      ),
      "uint8": lambda: within(values, 0, 255),
      "bool": lambda: within(values, 0, 1),
    }[storage]()
  )
  if not exact:
    space = getattr(env, "single_observation_space", obs)
    proven = (
      "not proven to be integers"
      if values is None
      else f"integers in [{values[0]:g}, {values[1]:g}]"
    )
    raise ConfigError(
      f"obs_storage={storage} cannot store the observations of {_env_name(env)} "
      f"exactly: {space} holds values {proven}. Use obs_storage=auto (the "
      f"smallest exact storage) or float32."
    )
  if storage == "bool":
    return bits_codec(obs)
  return cast_codec(obs, {"float32": np.float32, "uint8": np.uint8}[storage], storage)


def _env_name(env: Any) -> str:
  return str(getattr(getattr(env, "env", None), "name", type(env).__name__))
