"""Prioritized replay (Schaul et al. 2016): windows drawn by priority.

Importance-sampling weights ``(1 / P(i))^beta`` normalised by the batch
maximum are added to the batch as ``weight``, with ``beta`` annealed linearly
from ``importance_exponent`` to ``importance_exponent_end`` over the run.

Prioritized buffers hand out only items whose sum-tree leaf is positive: in
flashbax's prioritized buffers that is exactly the set of written items whose
whole window lies behind the write head. flashbax's own sampler does not
ensure this. Its tree descent goes right whenever the query is not below the
left sum, so an empty tree yields the right-most leaf (past the end of the
buffer when the capacity is not a power of two), and so does a query that
reaches the total, which happens both by rounding (the last stratum's uniform
draw can round up to exactly 1.0) and by drift of the internal sums (they are
updated by adding deltas, so they wander from the sum of their leaves). Such a
draw is replaced here by the newest complete window of its env (:func:`draw`),
and :func:`set_priorities` writes only leaves that are already positive, so
no unwritten or out-of-range item ever becomes sampleable.
"""

from __future__ import annotations

from typing import Any

import chex
import flashbax as fbx
import jax
import jax.numpy as jnp
from flashbax.buffers import sum_tree

from baselax.replay import store as store_lib
from baselax.replay.store import ReplaySample, ReplayState, Store

#: The learner writes each sampled item's new priority (|TD error| + epsilon).
USES_PRIORITIES = True


def trajectory_buffer(config: Any, **kwargs: Any) -> Any:
  """flashbax's prioritized trajectory buffer: the write head and the sum tree.

  Pad steps are not supported: :func:`~baselax.replay.buffers.make_replay`
  refuses a record with ``pad`` for a variant without ``SKIPS_PADS``.
  """
  device = jax.default_backend() if jax.default_backend() in ("gpu", "tpu") else "cpu"
  return fbx.make_prioritised_trajectory_buffer(
    **kwargs, priority_exponent=config.priority_exponent, device=device
  )


def importance_weights(probabilities: chex.Array, beta: chex.Numeric) -> chex.Array:
  """Prioritized-replay importance weights, normalised by the batch maximum.

  ``w_i = (N * P(i))^-beta / max_j (N * P(j))^-beta`` (Schaul et al. 2016,
  Alg. 1); the buffer size ``N`` cancels in the normalisation.

  Args:
    probabilities: ``(B,)`` sampling probabilities of the batch's items.
    beta: importance exponent in [0, 1].
  """
  chex.assert_rank(probabilities, 1)
  log_w = -beta * jnp.log(jnp.maximum(probabilities, 1e-30))
  return jnp.exp(log_w - jnp.max(log_w))


def draw(store: Store, state: ReplayState, key: jax.Array):
  """A stratified prioritized draw of sampleable items only.

  Returns ``(row, start, indices, probabilities)``, ``(B,)`` each:
  ``indices`` are sum-tree leaves, all positive once every env has a
  complete window in the buffer.
  """
  tree, rows, length = state.steps.sum_tree_state, store.rows, store.length
  drawn = sum_tree.stratified_sample(tree, store.batch_size, key)
  # flashbax lays items out row-major: item = row * length + start (period 1).
  sampleable = (drawn < rows * length) & (sum_tree.get_batch(tree, drawn) > 0)
  # The window that ends at the write head is complete, and sampleable as
  # soon as n + 1 steps are in (learning never starts earlier, see Derived).
  row = jnp.minimum(drawn // length, rows - 1)
  newest = row * length + (state.steps.current_index - store.window) % length
  indices = jnp.where(sampleable, drawn, newest)
  probabilities = sum_tree.get_batch(tree, indices) / tree.nodes[0]
  return indices // length, indices % length, indices, probabilities


def sample(
  store: Store, config: Any, state: ReplayState, key: jax.Array, progress: jax.Array
) -> ReplaySample:
  """A prioritized batch with ``weight``; ``progress`` in [0, 1] anneals ``beta``."""
  row, start, indices, probabilities = draw(store, state, key)
  batch = store_lib.transitions(store, state, row, start)
  beta = (
    config.importance_exponent
    + (config.importance_exponent_end - config.importance_exponent) * progress
  )
  return ReplaySample(
    batch={**batch, "weight": importance_weights(probabilities, beta)}, indices=indices
  )


def set_priorities(
  store: Store,
  state: ReplayState,
  indices: jax.Array,
  priorities: jax.Array,
  mask: jax.Array | None = None,
) -> ReplayState:
  """Writes ``priorities`` where ``mask`` holds, the priority is > 0 (not NaN)
  and the item is sampleable now; everything else is left as it is."""
  tree = state.steps.sum_tree_state
  write = (
    (indices < tree.capacity) & (sum_tree.get_batch(tree, indices) > 0) & (priorities > 0)
  )  # also refuses NaN
  if mask is not None:
    write = write & mask
  # An index past the tree with priority 0 is flashbax's own padding: it
  # changes no node (and no max_recorded_priority).
  padding = tree.nodes.shape[0] + 1
  steps = store.trajectory.set_priorities(
    state.steps, jnp.where(write, indices, padding), jnp.where(write, priorities, 0.0)
  )
  return state._replace(steps=steps)
