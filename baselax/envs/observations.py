"""How a suite's observation becomes the ONE array per env the trainer takes.

The replay buffer and the networks take one array per env. Suites emit
arrays, named tuples (Jumanji), dicts or dataclasses; their adapters convert
them here, in one documented way:

* **One array, no action mask** (Craftax, Navix, XLand-MiniGrid): kept in its
  shape (an ``(H, W, C)`` grid stays an image, which the conv net takes) and
  cast to float32, values unchanged. The space's bounds are the suite's
  declared ones for float observations and the dtype's range for integer
  ones (a suite's declared bounds of a categorical grid are not always what
  it emits: Navix declares 0..8 and emits 10).
* **Structured, or with an action mask** (Jumanji): every leaf except the
  mask is flattened (row-major) and cast to float32, in the order of
  ``jax.tree.leaves`` (a named tuple's or dataclass's field order, a dict's
  sorted keys), and concatenated into one vector ``(D,)``. A leaf whose
  declared bounds ``[low, high]`` are finite is scaled to ``[0, 1]`` as
  ``(x - low) / (high - low)`` (a step counter of 0..3999 would otherwise
  swamp an MLP's first layer; the space then says ``[0, 1]``, or no bounds
  for an integer leaf, since suites' counters can pass their declared
  maximum); others are kept as they are. The action mask,
  if any, comes LAST: ``num_actions`` entries, 1.0 valid and 0.0 invalid
  (:func:`baselax.envs.protocol.action_mask` reads it back).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

Bounds = tuple[Any, Any]


def dtype_bounds(dtype: Any) -> Bounds:
  """``(low, high)`` an integer or bool dtype can hold; ``(-inf, inf)`` for floats."""
  dtype = np.dtype(dtype)
  if dtype == np.bool_:
    return 0.0, 1.0
  if np.issubdtype(dtype, np.integer):
    info = np.iinfo(dtype)
    return float(info.min), float(info.max)
  return -np.inf, np.inf


def array_space(example: Any, declared: Bounds | None = None) -> gymnasium.spaces.Box:
  """The float32 ``Box`` of a one-array observation (see the module doc).

  Args:
    example: the observation's ``jax.ShapeDtypeStruct`` (or array).
    declared: the suite's ``(low, high)``, used for float observations.
  """
  shape, dtype = tuple(example.shape), np.dtype(example.dtype)
  if np.issubdtype(dtype, np.floating) and declared is not None:
    low, high = declared
  else:
    low, high = dtype_bounds(dtype)
  return gymnasium.spaces.Box(
    low=np.broadcast_to(np.asarray(low, np.float32), shape),
    high=np.broadcast_to(np.asarray(high, np.float32), shape),
    shape=shape,
    dtype=np.float32,
  )


def as_float(obs: jax.Array) -> jax.Array:
  """A one-array observation as the trainer takes it: float32, same shape."""
  return jnp.asarray(obs, jnp.float32)


def leaf_name(path: tuple[Any, ...]) -> str:
  """``"a.b"`` for a ``jax.tree_util`` key path (attribute, dict key or index)."""
  parts = []
  for key in path:
    for attr in ("name", "key", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return ".".join(parts)


class Flattener(NamedTuple):
  """A structured observation's conversion to one float32 vector ``(D,)``.

  Attributes:
    flatten: ``obs (one env's tree) -> (D,)`` float32; pure, vmappable.
    space: the ``Box`` of the vector (per-entry bounds).
    names: the leaves in the order they are concatenated (the mask last).
    has_action_mask: the last ``num_actions`` entries are the action mask.
  """

  flatten: Callable[[Any], jax.Array]
  space: gymnasium.spaces.Box
  names: tuple[str, ...]
  has_action_mask: bool


def flattener(
  example: Any,
  bounds: dict[str, Bounds],
  mask_name: str | None = None,
  num_actions: int | None = None,
) -> Flattener:
  """Builds the conversion of a structured observation (see the module doc).

  Args:
    example: one env's observation tree (``jax.ShapeDtypeStruct`` leaves).
    bounds: ``{leaf name: (low, high)}`` the suite declares (names as
      :func:`leaf_name` spells them); a leaf not in it is left unscaled.
    mask_name: the leaf holding the valid-action mask. It becomes the last
      entries only if it has shape ``(num_actions,)``; otherwise it is an
      ordinary leaf and the env has no action mask for the trainer.
    num_actions: the size of the Discrete action space (``None``: not one).
  """
  named = [
    (leaf_name(path), leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(example)[0]
  ]
  mask = None
  if mask_name is not None and num_actions is not None:
    found = [leaf for name, leaf in named if name == mask_name]
    if found and tuple(found[0].shape) == (num_actions,):
      mask = mask_name
  parts = [(name, leaf) for name, leaf in named if name != mask]
  offsets, scales, lows, highs = [], [], [], []
  for name, leaf in parts:
    size = int(np.prod(leaf.shape, dtype=np.int64))
    low, high = bounds.get(name, (None, None))
    low = None if low is None else np.broadcast_to(np.asarray(low, np.float64), leaf.shape)
    high = None if high is None else np.broadcast_to(np.asarray(high, np.float64), leaf.shape)
    if (
      low is not None
      and high is not None
      and np.all(np.isfinite(low))
      and np.all(np.isfinite(high))
      and np.all(high > low)
    ):
      offsets.append(low.reshape(-1).astype(np.float32))
      scales.append((1.0 / (high - low)).reshape(-1).astype(np.float32))
      # A suite's integer counters can pass their declared maximum (Jumanji's
      # step_count reaches time_limit, declared time_limit - 1): unbounded.
      integer = np.issubdtype(np.dtype(leaf.dtype), np.integer)
      lows.append(np.full(size, -np.inf if integer else 0.0, np.float32))
      highs.append(np.full(size, np.inf if integer else 1.0, np.float32))
    else:
      offsets.append(np.zeros(size, np.float32))
      scales.append(np.ones(size, np.float32))
      dlow, dhigh = dtype_bounds(leaf.dtype)
      lows.append(np.full(size, dlow, np.float32))
      highs.append(np.full(size, dhigh, np.float32))
  if mask is not None:
    assert num_actions is not None  # a mask is only found with num_actions
    lows.append(np.zeros(num_actions, np.float32))
    highs.append(np.ones(num_actions, np.float32))
  offset = np.concatenate(offsets) if offsets else np.zeros(0, np.float32)
  scale = np.concatenate(scales) if scales else np.zeros(0, np.float32)
  order = [name for name, _ in parts] + ([mask] if mask is not None else [])

  def flatten(obs: Any) -> jax.Array:
    leaves = dict(
      (leaf_name(path), leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(obs)[0]
    )
    x = (
      jnp.concatenate([jnp.ravel(jnp.asarray(leaves[name], jnp.float32)) for name, _ in parts])
      if parts
      else jnp.zeros((0,))
    )
    x = (x - offset) * scale
    if mask is not None:
      x = jnp.concatenate([x, jnp.asarray(leaves[mask], jnp.float32)])
    return x

  low, high = np.concatenate(lows), np.concatenate(highs)
  space = gymnasium.spaces.Box(low=low, high=high, shape=low.shape, dtype=np.float32)
  return Flattener(flatten, space, tuple(order), mask is not None)
