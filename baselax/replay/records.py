"""One env step as the replay stores it: a record, packed into uint32 words.

One packed row per step makes an add two scatters (the steps, and the true
final observations) and a sampled transition two gathers (three for n-step
windows), whatever the fields: per-field arrays took one of each per field,
and on a latency-bound loop the kernels are what a step costs.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Batch = dict[str, jax.Array]


def step_record(obs: Any, actions: jax.Array, step: Any, reward_clip: float | None = None) -> Batch:
  """What the loop hands the replay for one env step (leading axes kept).

  ``obs`` is what the envs acted on; ``next_obs`` the true next observation
  (the final one where an episode ended: the replay keeps it only for
  truncated steps). ``reward_clip``: rewards are clipped to ``[-c, c]``.
  """
  reward = step.reward
  if reward_clip is not None:
    reward = jnp.clip(reward, -reward_clip, reward_clip)
  return {
    "obs": obs,
    "action": actions,
    "reward": reward,
    "terminated": step.terminated,
    "truncated": step.truncated,
    "next_obs": step.final_obs,
  }


def example_record(agent: Any, env: Any) -> Batch:
  """The abstract :func:`step_record` of one env step (no env axis), by tracing only."""

  def record(key):
    params = agent.init_params(key)
    obs, env_state = env.functional_reset(key, 1)
    out, _ = agent.predict(params, agent.init_policy(key), obs, key, evaluation=False)
    _, step = env.functional_step(key, env_state, out.actions)
    return jax.tree.map(lambda x: x[0], step_record(obs, out.actions, step))

  return jax.eval_shape(record, jax.ShapeDtypeStruct((2,), jnp.uint32))


# --- one step as uint32 words --------------------------------------------------------


def num_words(spec: Any) -> int:
  """uint32 words holding one array of ``spec`` (its bytes, rounded up)."""
  return -(-math.prod(spec.shape) * np.dtype(spec.dtype).itemsize // 4)


def to_words(x: jax.Array, spec: Any) -> jax.Array:
  """``(..., *spec.shape) spec.dtype -> (..., num_words(spec)) uint32``, bit for bit."""
  lead = x.shape[: x.ndim - len(spec.shape)]
  dtype = np.dtype(spec.dtype)
  if dtype == np.bool_:
    x, dtype = x.astype(jnp.uint8), np.dtype(np.uint8)
  if dtype.itemsize == 4:
    return jax.lax.bitcast_convert_type(x, jnp.uint32).reshape(*lead, -1)
  if dtype.itemsize != 1:
    x = jax.lax.bitcast_convert_type(x, jnp.uint8)  # adds an axis of itemsize
  elif dtype != np.uint8:
    x = jax.lax.bitcast_convert_type(x, jnp.uint8)
  data = x.reshape(*lead, -1)
  pad = -data.shape[-1] % 4
  if pad:
    data = jnp.pad(data, [(0, 0)] * len(lead) + [(0, pad)])
  return jax.lax.bitcast_convert_type(data.reshape(*lead, -1, 4), jnp.uint32)


def from_words(words: jax.Array, spec: Any) -> jax.Array:
  """The inverse of :func:`to_words`: ``(..., n) uint32 -> (..., *spec.shape) spec.dtype``."""
  lead = words.shape[:-1]
  dtype = np.dtype(spec.dtype)
  target = np.dtype(np.uint8) if dtype == np.bool_ else dtype
  size = math.prod(spec.shape)
  if target.itemsize == 4:
    x = jax.lax.bitcast_convert_type(words, target)[..., :size]
  else:
    data = jax.lax.bitcast_convert_type(words, jnp.uint8).reshape(*lead, -1)
    data = data[..., : size * target.itemsize]
    if target.itemsize == 1:
      x = data if target == np.uint8 else jax.lax.bitcast_convert_type(data, target)
    else:
      x = jax.lax.bitcast_convert_type(data.reshape(*lead, size, target.itemsize), target)
  x = x.reshape(*lead, *spec.shape)
  return x.astype(jnp.bool_) if dtype == np.bool_ else x


class RecordLayout(NamedTuple):
  """Where each field of a step lives in its row of uint32 words.

  Attributes:
    obs: ``(treedef, [(offset, spec), ...])`` of the stored observation's
      leaves, from word 0 (so an observation is the row's first
      :attr:`obs_words` words).
    action: the same for the action.
    reward: the word of the float32 reward.
    flags: the word of ``terminated | truncated << 1 | first << 2 | pad << 3``
      (``first`` for frame stacks, ``pad`` for steps that are no transition:
      ``baselax.replay.store``).
    width: words per row.
    pads: whether steps may be pads.
  """

  obs: Any
  action: Any
  reward: int
  flags: int
  width: int
  pads: bool = False

  @property
  def obs_words(self) -> int:
    treedef, leaves = self.obs
    return sum(num_words(spec) for _, spec in leaves)


def _place(tree: Any, offset: int):
  leaves, treedef = jax.tree.flatten(tree)
  placed = []
  for spec in leaves:
    placed.append((offset, jax.ShapeDtypeStruct(spec.shape, spec.dtype)))
    offset += num_words(spec)
  # A tuple: a layout is hashed where a replay is a static argument of jit.
  return (treedef, tuple(placed)), offset


def record_layout(stored_obs: Any, action: Any) -> RecordLayout:
  """The :class:`RecordLayout` of steps whose stored observation is ``stored_obs``."""
  obs, offset = _place(stored_obs, 0)
  action, offset = _place(action, offset)
  return RecordLayout(obs=obs, action=action, reward=offset, flags=offset + 1, width=offset + 2)


def pack(placed: Any, tree: Any) -> jax.Array:
  """The leaves of ``tree`` (leading axes kept) as words, where ``placed`` puts them."""
  _, leaves = placed
  return jnp.concatenate(
    [to_words(x, spec) for x, (_, spec) in zip(jax.tree.leaves(tree), leaves, strict=True)], axis=-1
  )


def unpack(placed: Any, words: jax.Array, base: int = 0) -> Any:
  """The inverse of :func:`pack` on words that start at word ``base`` of a row."""
  treedef, leaves = placed
  return jax.tree.unflatten(
    treedef,
    [
      from_words(words[..., offset - base : offset - base + num_words(spec)], spec)
      for offset, spec in leaves
    ],
  )
