"""Replay for the Anakin loop: one copy of each observation, exact at truncation.

Four buffers, chosen by :class:`~baselax.anakin.AnakinConfig` and injected into
the loop (the loop never branches on them). All four keep the same layout and
differ only in the window they sample and how they draw it:

=============  ==================  =======================================
``n_step``     ``prioritized``     sampled item
=============  ==================  =======================================
1              False               a transition, uniformly
1              True                a transition, by priority
n > 1          False               an n-step window, uniformly
n > 1          True                an n-step window, by priority
=============  ==================  =======================================

**Layout**, per (device, seed), with ``N = num_envs`` rows (one per env),
``L = buffer_size // N`` steps per row (the capacity is ``N * L``)::

    records  uint32 (N, L + K, W): column c < L is step c of the row's env,
             its encoded observation (the one acted on), action, reward and
             the terminated/truncated flags packed into W words; column
             L + j holds the true final observation of a truncated step
             (bucket j, below)
    steps    flashbax trajectory-buffer bookkeeping: the write head, and for
             prioritised replay the sum tree over windows (row, start)
    clock    [] steps added per env, modulo K * T

One packed row per step makes an add two scatters (the steps, and the true
final observations) and a sampled transition two gathers (three for n-step
windows), whatever the fields: per-field arrays took one of each per field,
and on a latency-bound loop the kernels are what a step costs.

Observations are stored once, encoded by a :class:`~baselax.anakin.memory.ObsCodec`
(``obs_storage``) and decoded when sampled. A sampled item is a window of
``n + 1`` consecutive steps of one env: its transition acts on ``obs[start]``
and its next observation is the one stored ``k`` steps on, which is the same
observation (what the env showed next), ``k <= n`` being where the window
stops (the first episode end inside it). At an episode's end two observations
belong to one step: the true final one and the next episode's first (what was
acted on next). A terminated transition never bootstraps, so the next
episode's first stands in for it; a truncated one bootstraps from the true
final observation, which is kept in the side store. (PureJaxRL keeps one
copy too, but bootstraps a truncated transition from the next episode's first
observation.)

**The side store is bounded**: truncations of one env come at least ``T``
steps apart (its time limit: :func:`~baselax.anakin.memory.truncation_interval`),
so a row of ``L`` steps holds at most ``floor((L - 1) / T) + 1`` truncated
steps. The final observation of the step at per-env step ``a`` goes to bucket
``floor(a / T) mod K`` with ``K = floor((L - 1) / T) + 2`` (``K = 1`` if
``T >= L``): two truncations both still in the buffer are ``T`` to ``L - 1``
steps apart, so their ``floor(a / T)`` differ by 1 to ``K - 1`` and never
share a bucket. For a 500-step time limit and 1,000 steps per env that is 3
observations per env beside 1,000; with no known time limit (``T = 1``) the
side store is as large as the buffer.

Bytes per stored transition: the stored observation (rounded up to whole
4-byte words), 4 per action word, 8 for the reward and the flags, ``K / L``
of a row for the side store, and for prioritised replay the sum tree
(float32 nodes, ``2 * 2^ceil(log2(N * L))``: 8 to 16 bytes).

Shapes, per (device, seed)::

    add:     steps (num_envs, T, ...)               T = train_every
    sample:  ReplaySample.batch (batch_size, ...)   keys obs, action, reward,
             terminated, next_obs (+ discount for n > 1, weight if prioritised)

n-step returns (Sutton 1988; Hessel et al. 2018, "Rainbow") are computed at
sampling time from ``n`` consecutive one-step transitions of one env, and add
the key ``discount`` (``gamma^k * (1 - terminated)``) to the batch.
Prioritised replay (Schaul et al. 2016) adds ``weight``: importance-sampling
weights ``(1 / P(i))^beta`` normalised by the batch maximum, with ``beta``
annealed linearly (to 1 by default) over the run.

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

import math
from typing import Any, Callable, Dict, NamedTuple, Optional

import chex
import flashbax as fbx
import jax
import jax.numpy as jnp
import numpy as np
from flashbax.buffers import sum_tree

from baselax.anakin import memory
from baselax.anakin.config import AnakinConfig

Batch = Dict[str, jax.Array]


class ReplaySample(NamedTuple):
  """A sampled batch: ``batch`` for ``agent.update``, ``indices`` ``(B,)`` for priorities."""
  batch: Batch
  indices: jax.Array


class ReplayState(NamedTuple):
  """The state of one replay buffer; see the module doc for the layout.

  Attributes:
    records: ``uint32 (N, L + K, W)`` packed steps, then ``K`` true final
      observations of truncated steps per env.
    steps: flashbax (prioritised) trajectory-buffer state without its
      experience: the write head, and the sum tree if prioritised.
    clock: ``[]`` int32, steps added per env modulo ``K * T``.
  """
  records: jax.Array
  steps: Any
  clock: jax.Array


class Replay(NamedTuple):
  """Pure replay functions (flashbax style); see :func:`make_replay`.

  Attributes:
    init: ``init(example_record) -> ReplayState`` (one step record, no env
      axis; see :func:`step_record`; only its shapes and dtypes are read).
    add: ``add(state, records) -> state``, records ``(num_envs, T, ...)``.
    sample: ``sample(state, key, progress) -> ReplaySample``; ``progress`` in
      [0, 1] is the fraction of the run done (anneals ``beta``).
    set_priorities: ``set_priorities(state, indices, priorities, mask=None)
      -> state`` (identity for uniform replay). Writes only where ``mask``
      (broadcast to ``indices``; ``None`` = everywhere) holds, the priority is
      > 0, and the item is currently sampleable; everything else is left as is.
    prioritized: whether priorities are used.
    capacity: transitions the buffer holds, ``num_envs * (buffer_size // num_envs)``.
    final_slots: ``K``, true final observations kept per env.
    codec: how observations are stored.
  """
  init: Callable[[Batch], Any]
  add: Callable[[Any, Batch], Any]
  sample: Callable[[Any, jax.Array, jax.Array], ReplaySample]
  set_priorities: Callable[..., Any]
  prioritized: bool
  capacity: int
  final_slots: int
  codec: Any


def step_record(obs: Any, actions: jax.Array, step: Any,
                reward_clip: Optional[float] = None) -> Batch:
  """What the loop hands the replay for one env step (leading axes kept).

  ``obs`` is what the envs acted on; ``next_obs`` the true next observation
  (the final one where an episode ended: the replay keeps it only for
  truncated steps). ``reward_clip``: rewards are clipped to ``[-c, c]``.
  """
  reward = step.reward
  if reward_clip is not None:
    reward = jnp.clip(reward, -reward_clip, reward_clip)
  return {"obs": obs, "action": actions, "reward": reward,
          "terminated": step.terminated, "truncated": step.truncated,
          "next_obs": step.final_obs}


def example_record(agent: Any, env: Any) -> Batch:
  """The abstract :func:`step_record` of one env step (no env axis), by tracing only."""
  def record(key):
    params = agent.init_params(key)
    obs, env_state = env.functional_reset(key, 1)
    out, _ = agent.predict(params, agent.init_policy(key), obs, key, evaluation=False)
    _, step = env.functional_step(key, env_state, out.actions)
    return jax.tree.map(lambda x: x[0], step_record(obs, out.actions, step))
  return jax.eval_shape(record, jax.ShapeDtypeStruct((2,), jnp.uint32))


def window_return(reward: jax.Array, terminated: jax.Array, truncated: jax.Array,
                  discount: float):
  """The k-step return of a window of ``n`` one-step transitions of one env.

  The window stops at the first episode end inside it (``k <= n`` steps)::

      reward   = sum_{i<k} discount^i * r_i
      discount = discount^k * (1 - terminated_{k-1})

  Args:
    reward, terminated, truncated: ``(n,)``.
    discount: the per-step discount ``gamma``.

  Returns:
    ``(k, reward, discount)``.
  """
  chex.assert_rank(reward, 1)
  n = reward.shape[0]
  done = jnp.logical_or(terminated, truncated)
  # Step i is inside the window if no episode ended before it.
  ended_before = jnp.concatenate([jnp.zeros((1,), bool), jnp.cumsum(done[:-1]) > 0])
  inside = jnp.logical_not(ended_before)
  k = jnp.sum(inside)  # window length, 1..n
  powers = discount ** jnp.arange(n, dtype=jnp.float32)
  total = jnp.sum(jnp.where(inside, powers * reward, 0.0))
  bootstrap = (discount ** k.astype(jnp.float32)) * (
      1.0 - terminated[k - 1].astype(jnp.float32))
  return k, total, bootstrap


def n_step_transition(sequence: Batch, discount: float) -> Batch:
  """Reduces ``n`` consecutive one-step transitions of one env to one n-step transition.

  See :func:`window_return`; ``next_obs = next_obs_{k-1}`` (the true final
  obs if the episode ended), so a window cut by truncation bootstraps from the
  true final observation with ``discount^k``, and one cut by termination does
  not bootstrap.

  Args:
    sequence: dict of ``(n, ...)`` arrays with keys ``obs``, ``action``,
      ``reward``, ``terminated``, ``truncated``, ``next_obs``.
    discount: the per-step discount ``gamma``.

  Returns:
    One transition (no leading axis) with ``obs``, ``action``, ``reward``,
    ``terminated``, ``next_obs`` and ``discount``.
  """
  k, reward, bootstrap = window_return(sequence["reward"], sequence["terminated"],
                                       sequence["truncated"], discount)
  last = k - 1
  return {
      "obs": jax.tree.map(lambda x: x[0], sequence["obs"]),
      "action": sequence["action"][0],
      "reward": reward,
      "terminated": sequence["terminated"][last],
      "next_obs": jax.tree.map(lambda x: x[last], sequence["next_obs"]),
      "discount": bootstrap,
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


def final_slots(length: int, interval: int) -> int:
  """``K``: true final observations kept per env for ``length`` steps per env
  and truncations at least ``interval`` steps apart (see the module doc)."""
  interval = max(1, min(interval, length))
  return 1 if interval >= length else (length - 1) // interval + 2


# --- one step as uint32 words --------------------------------------------------------

def num_words(spec: Any) -> int:
  """uint32 words holding one array of ``spec`` (its bytes, rounded up)."""
  return -(-math.prod(spec.shape) * np.dtype(spec.dtype).itemsize // 4)


def to_words(x: jax.Array, spec: Any) -> jax.Array:
  """``(..., *spec.shape) spec.dtype -> (..., num_words(spec)) uint32``, bit for bit."""
  lead = x.shape[:x.ndim - len(spec.shape)]
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
    data = data[..., :size * target.itemsize]
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
    flags: the word of ``terminated | truncated << 1``.
    width: words per row.
  """
  obs: Any
  action: Any
  reward: int
  flags: int
  width: int

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
  return (treedef, placed), offset


def record_layout(stored_obs: Any, action: Any) -> RecordLayout:
  """The :class:`RecordLayout` of steps whose stored observation is ``stored_obs``."""
  obs, offset = _place(stored_obs, 0)
  action, offset = _place(action, offset)
  return RecordLayout(obs=obs, action=action, reward=offset, flags=offset + 1,
                      width=offset + 2)


def _pack(placed: Any, tree: Any) -> jax.Array:
  _, leaves = placed
  return jnp.concatenate([to_words(x, spec) for x, (_, spec) in
                          zip(jax.tree.leaves(tree), leaves)], axis=-1)


def _unpack(placed: Any, words: jax.Array, base: int = 0) -> Any:
  treedef, leaves = placed
  return jax.tree.unflatten(treedef, [
      from_words(words[..., offset - base:offset - base + num_words(spec)], spec)
      for offset, spec in leaves])


def make_replay(config: AnakinConfig, discount: Optional[float] = None, *,
                codec: Optional[memory.ObsCodec] = None,
                truncation_interval: int = 1) -> Replay:
  """The replay buffer for ``config`` (per device, per seed).

  Args:
    config: reads ``buffer_size``, ``batch_size``, ``num_envs``, ``n_step``,
      ``prioritized``, ``priority_exponent``, ``importance_exponent``.
    discount: ``gamma`` for n-step returns (required when ``n_step > 1``).
    codec: how observations are stored (default: as they come).
    truncation_interval: the fewest steps between two truncations of one env
      (:func:`~baselax.anakin.memory.truncation_interval`); 1 is always exact.

  The record layout is fixed by the first step record the buffer sees
  (``init``'s example, or the first ``add``).

  Prioritised sampling draws from flashbax's sum tree (stratified, as in
  Schaul et al. 2016) and gathers the windows itself: a draw that lands on a
  leaf that is not sampleable (zero, or past the buffer) is replaced by the
  window that ends at its env's write head, with that window's probability.
  """
  n = config.n_step
  if n > 1 and discount is None:
    raise ValueError("n_step > 1 needs the discount: the trainer reads it from "
                     "agent.discount_factor.")
  if codec is None:
    codec = memory.native_codec(None)
  device = jax.default_backend() if jax.default_backend() in ("gpu", "tpu") else "cpu"
  rows, length = config.num_envs, config.buffer_size // config.num_envs
  window = n + 1  # the n steps of the transition and the one whose obs is next
  interval = max(1, min(truncation_interval, length))
  slots = final_slots(length, interval)
  period = slots * interval  # the clock's modulus
  # flashbax keeps the write head (and the sum tree) over an empty field,
  # which the state does not keep (orbax refuses zero-size arrays).
  empty = lambda t: {"none": jnp.zeros((rows, t, 0), jnp.uint8)}  # noqa: E731
  kwargs = dict(add_batch_size=rows, sample_batch_size=config.batch_size,
                sample_sequence_length=window, period=1, min_length_time_axis=window,
                max_length_time_axis=length)
  buffer = (fbx.make_prioritised_trajectory_buffer(
      **kwargs, priority_exponent=config.priority_exponent, device=device)
            if config.prioritized else fbx.make_trajectory_buffer(**kwargs))
  layouts = []  # the one layout, fixed by the first record seen

  def layout_of(record: Batch) -> RecordLayout:
    """The layout for a step record (any leading axes: the spec is per step)."""
    lead = record["reward"].ndim
    strip = lambda x: jax.ShapeDtypeStruct(x.shape[lead:], x.dtype)  # noqa: E731
    obs = jax.eval_shape(codec.encode, jax.tree.map(strip, record["obs"]))
    found = record_layout(obs, jax.tree.map(strip, record["action"]))
    if not layouts:
      layouts.append(found)
    elif layouts[0] != found:
      raise ValueError(f"replay: step records changed shape: {found} after {layouts[0]}")
    return layouts[0]

  def init(example: Batch) -> ReplayState:
    layout = layout_of(example)
    return ReplayState(
        records=jnp.zeros((rows, length + slots, layout.width), jnp.uint32),
        steps=buffer.init(jax.tree.map(lambda x: x[0, 0], empty(1))).replace(
            experience={}),
        clock=jnp.zeros((), jnp.int32))

  def add(state: ReplayState, records: Batch) -> ReplayState:
    layout = layout_of(records)
    t = records["reward"].shape[1]
    flags = (records["terminated"].astype(jnp.uint32)
             | records["truncated"].astype(jnp.uint32) << 1)
    steps = jnp.concatenate([
        _pack(layout.obs, codec.encode(records["obs"])),
        _pack(layout.action, records["action"]),
        jax.lax.bitcast_convert_type(records["reward"].astype(jnp.float32),
                                     jnp.uint32)[..., None],
        flags[..., None]], axis=-1)
    finals = _pack(layout.obs, codec.encode(records["next_obs"]))
    finals = jnp.pad(finals, [(0, 0), (0, 0), (0, layout.width - finals.shape[-1])])
    columns = (state.steps.current_index + jnp.arange(t)) % length
    written = state.records.at[:, columns].set(steps)
    # True final observations of truncated steps go to their clock's bucket;
    # every other step's index is past the store, so its write is dropped.
    # (Two scatters: one over both, its updates concatenated, ran 3x slower
    # on CPU at 512 envs.)
    bucket = ((state.clock + jnp.arange(t)) % period) // interval
    final_columns = jnp.where(records["truncated"], length + bucket[None],
                              length + slots)
    env_rows = jnp.broadcast_to(jnp.arange(rows)[:, None], final_columns.shape)
    written = written.at[env_rows, final_columns].set(finals, mode="drop")
    steps = buffer.add(state.steps.replace(experience=empty(length)), empty(t))
    return ReplayState(records=written, steps=steps.replace(experience={}),
                       clock=(state.clock + t) % period)

  def final_column(state: ReplayState, column: jax.Array) -> jax.Array:
    """Where the true final observation of the step stored at ``column`` is."""
    back = (state.steps.current_index - 1 - column) % length  # steps since it
    return length + ((state.clock - 1 - back) % period) // interval

  def uniform_draw(state: ReplayState, key: jax.Array):
    """``(row, start)`` ``(B,)``: uniform over the complete windows (one draw each)."""
    steps = state.steps
    written = jnp.where(steps.is_full, length, steps.current_index)
    head = jnp.where(steps.is_full, steps.current_index, 0)
    starts = jnp.maximum(written - window + 1, 1)  # per row
    item = jax.random.randint(key, (config.batch_size,), 0, rows * starts)
    return item // starts, (head + item % starts) % length

  def prioritised_draw(state: ReplayState, key: jax.Array):
    """A stratified prioritised draw of sampleable items only.

    Returns ``(row, start, indices, probabilities)``, ``(B,)`` each:
    ``indices`` are sum-tree leaves, all positive once every env has a
    complete window in the buffer.
    """
    tree = state.steps.sum_tree_state
    drawn = sum_tree.stratified_sample(tree, config.batch_size, key)
    # flashbax lays items out row-major: item = row * length + start (period 1).
    sampleable = (drawn < rows * length) & (sum_tree.get_batch(tree, drawn) > 0)
    # The window that ends at the write head is complete, and sampleable as
    # soon as n + 1 steps are in (learning never starts earlier, see Derived).
    row = jnp.minimum(drawn // length, rows - 1)
    newest = row * length + (state.steps.current_index - window) % length
    indices = jnp.where(sampleable, drawn, newest)
    probabilities = sum_tree.get_batch(tree, indices) / tree.nodes[0]
    return indices // length, indices % length, indices, probabilities

  def transitions(state: ReplayState, row: jax.Array, start: jax.Array) -> Batch:
    """The batch of the windows starting at ``(row, start)``, ``(B,)`` each."""
    layout = layouts[0]
    obs_words = layout.obs_words
    records = state.records
    if n == 1:
      first = records[row, start]                                     # (B, W)
      flags = first[:, layout.flags]
      terminated, truncated = (flags & 1) > 0, (flags & 2) > 0
      reward = jax.lax.bitcast_convert_type(first[:, layout.reward], jnp.float32)
      k, bootstrap, obs_row = 1, None, first[:, :obs_words]
      action = _unpack(layout.action, first)
    else:
      times = (start[:, None] + jnp.arange(n)) % length
      tail = records[row[:, None], times, obs_words:]                 # (B, n, W - O)
      flags = tail[..., layout.flags - obs_words]
      k, reward, bootstrap = jax.vmap(
          lambda r, te, tr: window_return(r, te, tr, discount))(
              jax.lax.bitcast_convert_type(tail[..., layout.reward - obs_words],
                                           jnp.float32),
              (flags & 1) > 0, (flags & 2) > 0)
      last = jnp.take_along_axis(flags, (k - 1)[:, None], 1)[:, 0]
      terminated, truncated = (last & 1) > 0, (last & 2) > 0
      obs_row = records[row, start, :obs_words]
      action = _unpack(layout.action, tail[:, 0], base=obs_words)
    last_column = (start + k - 1) % length
    next_column = jnp.where(truncated, final_column(state, last_column),
                            (start + k) % length)
    next_row = records[row, next_column, :obs_words]
    batch = {"obs": codec.decode(_unpack(layout.obs, obs_row)), "action": action,
             "reward": reward, "terminated": terminated,
             "next_obs": codec.decode(_unpack(layout.obs, next_row))}
    if bootstrap is not None:
      batch["discount"] = bootstrap
    return batch

  def sample(state: ReplayState, key: jax.Array, progress: jax.Array) -> ReplaySample:
    if config.prioritized:
      row, start, indices, probabilities = prioritised_draw(state, key)
      batch = transitions(state, row, start)
      beta = config.importance_exponent + (
          config.importance_exponent_end - config.importance_exponent) * progress
      batch = {**batch, "weight": importance_weights(probabilities, beta)}
    else:
      row, start = uniform_draw(state, key)
      batch = transitions(state, row, start)
      indices = jnp.zeros((config.batch_size,), jnp.int32)
    return ReplaySample(batch=batch, indices=indices)

  def set_priorities(state: ReplayState, indices, priorities, mask=None):
    if not config.prioritized:
      return state
    tree = state.steps.sum_tree_state
    write = ((indices < tree.capacity) & (sum_tree.get_batch(tree, indices) > 0)
             & (priorities > 0))  # also refuses NaN
    if mask is not None:
      write = write & mask
    # An index past the tree with priority 0 is flashbax's own padding: it
    # changes no node (and no max_recorded_priority).
    padding = tree.nodes.shape[0] + 1
    steps = buffer.set_priorities(state.steps, jnp.where(write, indices, padding),
                                  jnp.where(write, priorities, 0.0))
    return state._replace(steps=steps)

  return Replay(init=init, add=add, sample=sample, set_priorities=set_priorities,
                prioritized=config.prioritized, capacity=rows * length,
                final_slots=slots, codec=codec)
