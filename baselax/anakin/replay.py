"""Replay for the Anakin loop: flashbax buffers behind one ``init/add/sample`` shape.

Four buffers, chosen by :class:`~baselax.anakin.AnakinConfig` and injected into
the loop (the loop never branches on them):

=============  ==================  ==========================================
``n_step``     ``prioritized``     flashbax buffer
=============  ==================  ==========================================
1              False               item buffer (uniform over transitions)
1              True                prioritised item buffer
n > 1          False               trajectory buffer, sequences of ``n``
n > 1          True                prioritised trajectory buffer
=============  ==================  ==========================================

Every buffer stores one-step transitions ``{obs, action, reward, terminated,
next_obs}`` (plus ``truncated`` when ``n > 1``) and returns batches in the
agent's ``update`` format. Shapes, per (device, seed)::

    add:     transitions (num_envs, T, ...)        T = train_every
    sample:  ReplaySample.batch (batch_size, ...)  n-step sequences reduced

n-step returns (Sutton 1988; Hessel et al. 2018, "Rainbow") are computed at
sampling time from ``n`` consecutive one-step transitions of one env, and add
the key ``discount`` (``gamma^k * (1 - terminated)``) to the batch.
Prioritised replay (Schaul et al. 2016) adds ``weight``: importance-sampling
weights ``(1 / P(i))^beta`` normalised by the batch maximum, with ``beta``
annealed linearly to 1 over the run.

Prioritised buffers hand out only items whose sum-tree leaf is positive: in
flashbax's prioritised buffers that is exactly the set of written items whose
whole window lies behind the write head. flashbax's own sampler does not
ensure this. Its tree descent goes right whenever the query is not below the
left sum, so an empty tree yields the right-most leaf (past the end of the
buffer when the capacity is not a power of two), and so does a query that
reaches the total, which happens both by rounding (the last stratum's uniform
draw can round up to exactly 1.0) and by drift of the internal sums (they are
updated by adding deltas, so they wander from the sum of their leaves). Such a
draw is replaced here by the newest complete window of its env (see
:func:`make_replay`), and ``set_priorities`` writes only leaves that are
already positive, so no unwritten or out-of-range item ever becomes sampleable.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Optional

import chex
import flashbax as fbx
import jax
import jax.numpy as jnp
from flashbax.buffers import sum_tree

from baselax.anakin.config import AnakinConfig

Batch = Dict[str, jax.Array]


class ReplaySample(NamedTuple):
  """A sampled batch: ``batch`` for ``agent.update``, ``indices`` ``(B,)`` for priorities."""
  batch: Batch
  indices: jax.Array


class Replay(NamedTuple):
  """Pure replay functions (flashbax style); see :func:`make_replay`.

  Attributes:
    init: ``init(example_transition) -> state`` (one transition, no env axis).
    add: ``add(state, transitions) -> state``, transitions ``(num_envs, T, ...)``.
    sample: ``sample(state, key, progress) -> ReplaySample``; ``progress`` in
      [0, 1] is the fraction of the run done (anneals ``beta``).
    set_priorities: ``set_priorities(state, indices, priorities, mask=None)
      -> state`` (identity for uniform replay). Writes only where ``mask``
      (broadcast to ``indices``; ``None`` = everywhere) holds, the priority is
      > 0, and the item is currently sampleable; everything else is left as is.
    prioritized: whether priorities are used.
    stores_truncated: whether transitions must carry ``truncated``.
  """
  init: Callable[[Batch], Any]
  add: Callable[[Any, Batch], Any]
  sample: Callable[[Any, jax.Array, jax.Array], ReplaySample]
  set_priorities: Callable[..., Any]
  prioritized: bool
  stores_truncated: bool


def n_step_transition(sequence: Batch, discount: float) -> Batch:
  """Reduces ``n`` consecutive one-step transitions of one env to one n-step transition.

  The window stops at the first episode end inside it (``k <= n`` steps)::

      reward   = sum_{i<k} discount^i * r_i
      discount = discount^k * (1 - terminated_{k-1})
      next_obs = next_obs_{k-1}      (the true final obs if the episode ended)

  So a window cut by truncation bootstraps from the true final observation
  with ``discount^k``, and one cut by termination does not bootstrap.

  Args:
    sequence: dict of ``(n, ...)`` arrays with keys ``obs``, ``action``,
      ``reward``, ``terminated``, ``truncated``, ``next_obs``.
    discount: the per-step discount ``gamma``.

  Returns:
    One transition (no leading axis) with ``obs``, ``action``, ``reward``,
    ``terminated``, ``next_obs`` and ``discount``.
  """
  chex.assert_rank(sequence["reward"], 1)
  n = sequence["reward"].shape[0]
  done = jnp.logical_or(sequence["terminated"], sequence["truncated"])
  # Step i is inside the window if no episode ended before it.
  ended_before = jnp.concatenate([jnp.zeros((1,), bool), jnp.cumsum(done[:-1]) > 0])
  inside = jnp.logical_not(ended_before)
  k = jnp.sum(inside)  # window length, 1..n
  powers = discount ** jnp.arange(n, dtype=jnp.float32)
  reward = jnp.sum(jnp.where(inside, powers * sequence["reward"], 0.0))
  last = k - 1
  terminated = sequence["terminated"][last]
  return {
      "obs": sequence["obs"][0],
      "action": sequence["action"][0],
      "reward": reward,
      "terminated": terminated,
      "next_obs": jax.tree.map(lambda x: x[last], sequence["next_obs"]),
      "discount": (discount ** k.astype(jnp.float32)) * (
          1.0 - terminated.astype(jnp.float32)),
  }


def importance_weights(probabilities: chex.Array, beta: chex.Numeric) -> chex.Array:
  """Prioritised-replay importance weights, normalised by the batch maximum.

  ``w_i = (N * P(i))^-beta / max_j (N * P(j))^-beta`` (Schaul et al. 2016,
  Alg. 1); the buffer size ``N`` cancels in the normalisation.

  Args:
    probabilities: ``(B,)`` sampling probabilities of the batch's items.
    beta: importance exponent in [0, 1].
  """
  chex.assert_rank(probabilities, 1)
  log_w = -beta * jnp.log(jnp.maximum(probabilities, 1e-30))
  return jnp.exp(log_w - jnp.max(log_w))


def make_replay(config: AnakinConfig, discount: Optional[float] = None) -> Replay:
  """The replay buffer for ``config`` (per device, per seed).

  Args:
    config: reads ``buffer_size``, ``batch_size``, ``num_envs``, ``n_step``,
      ``prioritized``, ``priority_exponent``, ``importance_exponent``.
    discount: ``gamma`` for n-step returns (required when ``n_step > 1``).

  Prioritised sampling draws from flashbax's sum tree (stratified, as in
  Schaul et al. 2016) and gathers the windows itself: a draw that lands on a
  leaf that is not sampleable (zero, or past the buffer) is replaced by the
  window that ends at its env's write head, with that window's probability.
  """
  n = config.n_step
  if n > 1 and discount is None:
    raise ValueError("n_step > 1 needs the discount: the trainer reads it from "
                     "agent.discount_factor.")
  device = jax.default_backend() if jax.default_backend() in ("gpu", "tpu") else "cpu"
  if n == 1:
    kwargs = dict(max_length=config.buffer_size, min_length=config.batch_size,
                  sample_batch_size=config.batch_size, add_sequences=True,
                  add_batches=True)
    buffer = (fbx.make_prioritised_item_buffer(
        **kwargs, priority_exponent=config.priority_exponent, device=device)
              if config.prioritized else fbx.make_item_buffer(**kwargs))
    reduce = lambda experience: experience  # noqa: E731
  else:
    kwargs = dict(add_batch_size=config.num_envs, sample_batch_size=config.batch_size,
                  sample_sequence_length=n, period=1, min_length_time_axis=n,
                  max_length_time_axis=config.buffer_size // config.num_envs)
    buffer = (fbx.make_prioritised_trajectory_buffer(
        **kwargs, priority_exponent=config.priority_exponent, device=device)
              if config.prioritized else fbx.make_trajectory_buffer(**kwargs))
    reduce = jax.vmap(lambda seq: n_step_transition(seq, discount))

  def draw(state, key):
    """A stratified prioritised draw of sampleable items only.

    Returns ``(experience, indices, probabilities)``: ``experience`` leaves
    ``(B, ...)`` (n = 1) or ``(B, n, ...)``, ``indices`` ``(B,)`` sum-tree
    leaves, all positive once every env has ``n`` steps in the buffer.
    """
    tree = state.sum_tree_state
    rows, length = jax.tree.leaves(state.experience)[0].shape[:2]
    drawn = sum_tree.stratified_sample(tree, config.batch_size, key)
    # flashbax lays items out row-major (row = env, or one row for the item
    # buffers), item = row * length + start time (period 1).
    sampleable = (drawn < rows * length) & (sum_tree.get_batch(tree, drawn) > 0)
    # The window that ends at the write head is complete, and sampleable as
    # soon as n steps are in (learning never starts earlier, see Derived).
    row = jnp.minimum(drawn // length, rows - 1)
    newest = row * length + (state.current_index - n) % length
    indices = jnp.where(sampleable, drawn, newest)
    probabilities = sum_tree.get_batch(tree, indices) / tree.nodes[0]
    row, start = indices // length, indices % length
    if n == 1:
      experience = jax.tree.map(lambda x: x[row, start], state.experience)
    else:
      times = (start[:, None] + jnp.arange(n)) % length
      experience = jax.tree.map(lambda x: x[row[:, None], times], state.experience)
    return experience, indices, probabilities

  def sample(state, key, progress):
    if config.prioritized:
      experience, indices, probabilities = draw(state, key)
      batch = reduce(experience)
      beta = config.importance_exponent + (1.0 - config.importance_exponent) * progress
      batch = {**batch, "weight": importance_weights(probabilities, beta)}
    else:
      batch = reduce(buffer.sample(state, key).experience)
      indices = jnp.zeros((config.batch_size,), jnp.int32)
    return ReplaySample(batch=batch, indices=indices)

  def set_priorities(state, indices, priorities, mask=None):
    if not config.prioritized:
      return state
    tree = state.sum_tree_state
    write = ((indices < tree.capacity) & (sum_tree.get_batch(tree, indices) > 0)
             & (priorities > 0))  # also refuses NaN
    if mask is not None:
      write = write & mask
    # An index past the tree with priority 0 is flashbax's own padding: it
    # changes no node (and no max_recorded_priority).
    padding = tree.nodes.shape[0] + 1
    return buffer.set_priorities(state, jnp.where(write, indices, padding),
                                 jnp.where(write, priorities, 0.0))

  return Replay(init=buffer.init, add=buffer.add, sample=sample,
                set_priorities=set_priorities, prioritized=config.prioritized,
                stores_truncated=n > 1)
