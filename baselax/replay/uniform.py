"""Uniform replay: every complete window of every env equally likely."""

from __future__ import annotations

from typing import Any

import flashbax as fbx
import jax
import jax.numpy as jnp

from baselax.replay import store as store_lib
from baselax.replay.store import ReplaySample, ReplayState, Store

#: Uniform sampling writes no priorities.
USES_PRIORITIES = False

#: It draws around pad steps (optional in a variant: ``False`` if absent).
SKIPS_PADS = True


def trajectory_buffer(config: Any, **kwargs: Any) -> Any:
  """flashbax's trajectory buffer: it keeps the write head."""
  del config
  return fbx.make_trajectory_buffer(**kwargs)


#: With pad steps, candidates drawn per sampled item (the first valid ones are kept).
PAD_CANDIDATES = 2


def draw(store: Store, state: ReplayState, key: jax.Array):
  """``(row, start)`` ``(B,)``: uniform over the complete windows (one draw each).

  A store with pad steps draws ``PAD_CANDIDATES`` times as many and keeps
  the first ``B`` that are not pads: uniform over the windows that are
  transitions, unless fewer than ``B`` of the candidates are (with at most a
  third of the steps pads, at batch 128: below 1e-8), when the rest are
  filled with the first candidate. (Each candidate costs a threefry draw:
  on a CPU the draws are most of the sampling's time.)
  """
  steps, length = state.steps, store.length
  written = jnp.where(steps.is_full, length, steps.current_index)
  head = jnp.where(steps.is_full, steps.current_index, 0)
  starts = jnp.maximum(written - store.window + 1, 1)  # per row
  count = store.batch_size * (PAD_CANDIDATES if store.pads else 1)
  item = jax.random.randint(key, (count,), 0, store.rows * starts)
  row, start = item // starts, (head + item % starts) % length
  if not store.pads:
    return row, start
  # The first batch_size candidates that are no pads, in order (a scatter by
  # their running count: jnp.nonzero's general path cost 6x the whole draw on CPU).
  valid = ~store_lib.is_pad(store, state, row, start)
  slot = jnp.where(valid, jnp.cumsum(valid) - 1, store.batch_size)
  kept = jnp.zeros((store.batch_size,), jnp.int32).at[slot].set(jnp.arange(count), mode="drop")
  return row[kept], start[kept]


def sample(
  store: Store, config: Any, state: ReplayState, key: jax.Array, progress: jax.Array
) -> ReplaySample:
  """A uniform batch (``indices`` are zeros: there are no priorities)."""
  del config, progress
  row, start = draw(store, state, key)
  return ReplaySample(
    batch=store_lib.transitions(store, state, row, start),
    indices=jnp.zeros((store.batch_size,), jnp.int32),
  )


def set_priorities(
  store: Store,
  state: ReplayState,
  indices: jax.Array,
  priorities: jax.Array,
  mask: jax.Array | None = None,
) -> ReplayState:
  """Uniform replay has no priorities: the state as it is."""
  del store, indices, priorities, mask
  return state
