"""The store every replay variant shares: packed steps, one copy of each observation.

**Layout**, per (device, seed), with ``N = num_envs`` rows (one per env),
``L = buffer_size // N`` steps per row (the capacity is ``N * L``)::

    records  uint32 (N, L + K, W): column c < L is step c of the row's env,
             its encoded observation (the one acted on), action, reward and
             the terminated/truncated flags packed into W words
             (records.py); column L + j holds the true final observation of
             a truncated step (bucket j, below)
    steps    flashbax trajectory-buffer bookkeeping: the write head, and for
             prioritized replay the sum tree over windows (row, start)
    clock    [] steps added per env, modulo K * T

Observations are stored once, encoded by an :class:`~baselax.replay.codecs.ObsCodec`
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
steps apart (its time limit: :func:`~baselax.envs.protocol.truncation_interval`),
so a row of ``L`` steps holds at most ``floor((L - 1) / T) + 1`` truncated
steps. The final observation of the step at per-env step ``a`` goes to bucket
``floor(a / T) mod K`` with ``K = floor((L - 1) / T) + 2`` (``K = 1`` if
``T >= L``): two truncations both still in the buffer are ``T`` to ``L - 1``
steps apart, so their ``floor(a / T)`` differ by 1 to ``K - 1`` and never
share a bucket. With no known time limit (``T = 1``) the side store is as
large as the buffer.

**Frame stacks** (:func:`~baselax.replay.codecs.frame_codec`, ``k`` frames):
a step stores only the newest frame of its observation, and a flag marks the
first step of each episode (``records["first"]``). A sampled window then
starts ``k - 1`` steps before its transition, and each observation is
rebuilt from the newest frames of its step and the ``k - 1`` before it, an
episode's first frame repeated before its first step; a truncated step's
final observation from the ``k - 1`` frames before it and the true final
frame (kept in the side store). The first ``k - 1`` steps of each env's
first episode are never sampled (there is no window that holds them whole).

**Pad steps** (records with a ``pad`` key): a step that is no transition,
such as the reset-only step of gymnasium's ``NEXT_STEP`` autoreset, keeps the
rows in lock step; it follows an episode's end, so no window reaches past it,
and no window starts at it (:mod:`~baselax.replay.uniform` draws around them;
prioritized sampling refuses a store with pads).

Bytes per stored transition: the stored observation (rounded up to whole
4-byte words), 4 per action word, 8 for the reward and the flags, ``K / L``
of a row for the side store, and for prioritized replay the sum tree
(float32 nodes, ``2 * 2^ceil(log2(N * L))``: 8 to 16 bytes).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from baselax.replay import records as records_lib
from baselax.replay import windows
from baselax.replay.codecs import ObsCodec
from baselax.replay.records import Batch, RecordLayout


class ReplaySample(NamedTuple):
  """A sampled batch: ``batch`` for ``agent.update``, ``indices`` ``(B,)`` for priorities."""

  batch: Batch
  indices: jax.Array


class ReplayState(NamedTuple):
  """The state of one replay buffer; see the module doc for the layout.

  Attributes:
    records: ``uint32 (N, L + K, W)`` packed steps, then ``K`` true final
      observations of truncated steps per env.
    steps: flashbax (prioritized) trajectory-buffer state without its
      experience: the write head, and the sum tree if prioritized.
    clock: ``[]`` int32, steps added per env modulo ``K * T``.
  """

  records: jax.Array
  steps: Any
  clock: jax.Array


class Store(NamedTuple):
  """The static description of one buffer: everything its functions read.

  Attributes:
    rows: ``N``, one per env.
    length: ``L``, steps kept per env.
    n_step: ``n``, one-step transitions per sampled window.
    slots: ``K``, true final observations kept per env.
    interval: ``T``, the fewest steps between two truncations of one env.
    batch_size: items per sample.
    discount: ``gamma`` for n-step returns (``None`` when ``n = 1``).
    codec: how observations are stored.
    layout: where each field of a step lives in its row of words.
    trajectory: the flashbax buffer that keeps the write head (and the sum
      tree), over an empty field.
  """

  rows: int
  length: int
  n_step: int
  slots: int
  interval: int
  batch_size: int
  discount: float | None
  codec: ObsCodec
  layout: RecordLayout
  trajectory: Any

  @property
  def pads(self) -> bool:
    """Whether steps may be pads (flag bit 3): records with a ``pad`` key."""
    return self.layout.pads

  @property
  def history(self) -> int:
    """Steps a window holds before its transition: ``k - 1`` for frame stacks, else 0."""
    return self.codec.stack - 1

  @property
  def window(self) -> int:
    """Steps of a sampled item: the frames before it, the ``n`` of its
    transition and the one whose obs is next."""
    return self.history + self.n_step + 1

  @property
  def period(self) -> int:
    """The clock's modulus."""
    return self.slots * self.interval


def final_slots(length: int, interval: int) -> int:
  """``K``: true final observations kept per env for ``length`` steps per env
  and truncations at least ``interval`` steps apart (see the module doc)."""
  interval = max(1, min(interval, length))
  return 1 if interval >= length else (length - 1) // interval + 2


def layout_of(record: Batch, codec: ObsCodec) -> RecordLayout:
  """The :class:`RecordLayout` of a step record (any leading axes: the spec is per step)."""
  lead = record["reward"].ndim
  strip = lambda x: jax.ShapeDtypeStruct(x.shape[lead:], x.dtype)  # noqa: E731
  obs = jax.eval_shape(codec.encode, jax.tree.map(strip, record["obs"]))
  layout = records_lib.record_layout(obs, jax.tree.map(strip, record["action"]))
  return layout._replace(pads="pad" in record)


def empty(rows: int, steps: int) -> Any:
  """flashbax keeps the write head (and the sum tree) over this empty field,
  which the state does not keep (orbax refuses zero-size arrays)."""
  return {"none": jnp.zeros((rows, steps, 0), jnp.uint8)}


def init(store: Store) -> ReplayState:
  """An empty buffer."""
  steps = store.trajectory.init(jax.tree.map(lambda x: x[0, 0], empty(store.rows, 1)))
  return ReplayState(
    records=jnp.zeros((store.rows, store.length + store.slots, store.layout.width), jnp.uint32),
    steps=steps.replace(experience={}),
    clock=jnp.zeros((), jnp.int32),
  )


def add(store: Store, state: ReplayState, records: Batch) -> ReplayState:
  """Appends ``records`` ``(num_envs, T, ...)`` (:func:`~baselax.replay.records.step_record`)."""
  layout, length = store.layout, store.length
  if layout_of(records, store.codec) != layout:
    raise ValueError(
      f"replay: step records changed shape: {layout_of(records, store.codec)} after {layout}"
    )
  t = records["reward"].shape[1]
  flags = records["terminated"].astype(jnp.uint32) | records["truncated"].astype(jnp.uint32) << 1
  if store.history:
    if "first" not in records:
      raise ValueError(
        "replay: frame-stack storage needs records['first'] (the step starts an episode)."
      )
    flags = flags | records["first"].astype(jnp.uint32) << 2
  if store.pads:
    flags = flags | records["pad"].astype(jnp.uint32) << 3
  steps = jnp.concatenate(
    [
      records_lib.pack(layout.obs, store.codec.encode(records["obs"])),
      records_lib.pack(layout.action, records["action"]),
      jax.lax.bitcast_convert_type(records["reward"].astype(jnp.float32), jnp.uint32)[..., None],
      flags[..., None],
    ],
    axis=-1,
  )
  finals = records_lib.pack(layout.obs, store.codec.encode(records["next_obs"]))
  finals = jnp.pad(finals, [(0, 0), (0, 0), (0, layout.width - finals.shape[-1])])
  columns = (state.steps.current_index + jnp.arange(t)) % length
  written = state.records.at[:, columns].set(steps)
  # True final observations of truncated steps go to their clock's bucket;
  # every other step's index is past the store, so its write is dropped.
  # (Two scatters: one over both, its updates concatenated, ran slower on CPU.)
  bucket = ((state.clock + jnp.arange(t)) % store.period) // store.interval
  final_columns = jnp.where(records["truncated"], length + bucket[None], length + store.slots)
  env_rows = jnp.broadcast_to(jnp.arange(store.rows)[:, None], final_columns.shape)
  written = written.at[env_rows, final_columns].set(finals, mode="drop")
  steps = store.trajectory.add(
    state.steps.replace(experience=empty(store.rows, length)), empty(store.rows, t)
  )
  return ReplayState(
    records=written, steps=steps.replace(experience={}), clock=(state.clock + t) % store.period
  )


def is_pad(store: Store, state: ReplayState, row: jax.Array, start: jax.Array) -> jax.Array:
  """Whether the transition of the window at ``(row, start)`` is a pad step."""
  column = (start + store.history) % store.length
  return (state.records[row, column, store.layout.flags] & 8) > 0


def final_column(store: Store, state: ReplayState, column: jax.Array) -> jax.Array:
  """Where the true final observation of the step stored at ``column`` is."""
  back = (state.steps.current_index - 1 - column) % store.length  # steps since it
  return store.length + ((state.clock - 1 - back) % store.period) // store.interval


def window_returns(
  store: Store, reward: jax.Array, terminated: jax.Array, truncated: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(k, return, discount)`` of ``(B, n)`` windows (``windows.window_return``)."""
  discount = store.discount
  assert discount is not None  # n > 1 stores its gamma
  return jax.vmap(lambda r, te, tr: windows.window_return(r, te, tr, discount))(
    reward, terminated, truncated
  )


def transitions(store: Store, state: ReplayState, row: jax.Array, start: jax.Array) -> Batch:
  """The batch of the windows starting at ``(row, start)``, ``(B,)`` each."""
  if store.history:
    return stacked_transitions(store, state, row, start)
  layout, length, n = store.layout, store.length, store.n_step
  obs_words = layout.obs_words
  records = state.records
  k: int | jax.Array  # the window's length: 1, or each window's own
  if n == 1:
    first = records[row, start]  # (B, W)
    flags = first[:, layout.flags]
    terminated, truncated = (flags & 1) > 0, (flags & 2) > 0
    reward = jax.lax.bitcast_convert_type(first[:, layout.reward], jnp.float32)
    k, bootstrap, obs_row = 1, None, first[:, :obs_words]
    action = records_lib.unpack(layout.action, first)
  else:
    times = (start[:, None] + jnp.arange(n)) % length
    tail = records[row[:, None], times, obs_words:]  # (B, n, W - O)
    flags = tail[..., layout.flags - obs_words]
    k, reward, bootstrap = window_returns(
      store,
      jax.lax.bitcast_convert_type(tail[..., layout.reward - obs_words], jnp.float32),
      (flags & 1) > 0,
      (flags & 2) > 0,
    )
    last = jnp.take_along_axis(flags, (k - 1)[:, None], 1)[:, 0]
    terminated, truncated = (last & 1) > 0, (last & 2) > 0
    obs_row = records[row, start, :obs_words]
    action = records_lib.unpack(layout.action, tail[:, 0], base=obs_words)
  last_column = (start + k - 1) % length
  next_column = jnp.where(truncated, final_column(store, state, last_column), (start + k) % length)
  next_row = records[row, next_column, :obs_words]
  decode = store.codec.decode
  batch = {
    "obs": decode(records_lib.unpack(layout.obs, obs_row)),
    "action": action,
    "reward": reward,
    "terminated": terminated,
    "next_obs": decode(records_lib.unpack(layout.obs, next_row)),
  }
  if bootstrap is not None:
    batch["discount"] = bootstrap
  return batch


def restack(frames: jax.Array, first: jax.Array) -> jax.Array:
  """Frame stacks from the newest frames of ``k`` consecutive steps.

  ``frames`` ``(B, k, *frame)``, ``first`` ``(B, k)`` (the step starts an
  episode), oldest first. Frames from before the newest episode start in the
  stack are replaced by that start's frame, as ``FrameStackObservation``
  pads (``padding_type="reset"``). Returns ``(B, k, *frame)``.
  """
  k = frames.shape[1]
  position = jnp.arange(k)
  start = jnp.max(jnp.where(first[:, 1:], position[1:], 0), axis=1)  # newest start, or 0
  source = jnp.maximum(position[None], start[:, None])
  return jax.vmap(lambda f, i: f[i])(frames, source)


def stacked_transitions(
  store: Store, state: ReplayState, row: jax.Array, start: jax.Array
) -> Batch:
  """:func:`transitions` of frame-stack storage: the window's first ``k - 1``
  steps only give frames (see the module doc)."""
  layout, length, n, h = store.layout, store.length, store.n_step, store.history
  columns = (start[:, None] + jnp.arange(store.window)) % length
  window = state.records[row[:, None], columns]  # (B, h + n + 1, W)
  decode = store.codec.decode
  frames = decode(records_lib.unpack(layout.obs, window[..., : layout.obs_words]))
  flags = window[..., layout.flags]
  first = (flags & 4) > 0
  rewards = jax.lax.bitcast_convert_type(window[:, h : h + n, layout.reward], jnp.float32)
  terminated, truncated = (flags[:, h : h + n] & 1) > 0, (flags[:, h : h + n] & 2) > 0
  if n == 1:
    k, reward, bootstrap = jnp.ones_like(start), rewards[:, 0], None
  else:
    k, reward, bootstrap = window_returns(store, rewards, terminated, truncated)
  take = lambda x, i: jnp.take_along_axis(x, i, axis=1)  # noqa: E731
  last_terminated = take(terminated, (k - 1)[:, None])[:, 0]
  last_truncated = take(truncated, (k - 1)[:, None])[:, 0]
  # The next observation's stack ends at window position h + k; a truncated
  # step's ends with the true final frame instead (the side store).
  final = final_column(store, state, (start + h + k - 1) % length)
  final_frame = decode(
    records_lib.unpack(layout.obs, state.records[row, final, : layout.obs_words])
  )
  positions = (h + k)[:, None] + jnp.arange(-h, 1)  # (B, h + 1)
  gather = lambda x: jax.vmap(lambda xs, i: xs[i])(x, positions)  # noqa: E731
  next_frames, next_first = gather(frames), gather(first)
  cut = last_truncated.reshape(-1, *([1] * (final_frame.ndim - 1)))  # against (B, *frame)
  next_frames = next_frames.at[:, h].set(jnp.where(cut, final_frame, next_frames[:, h]))
  next_first = next_first.at[:, h].set(next_first[:, h] & ~last_truncated)
  batch = {
    "obs": restack(frames[:, : h + 1], first[:, : h + 1]),
    "action": records_lib.unpack(layout.action, window[:, h]),
    "reward": reward,
    "terminated": last_terminated,
    "next_obs": restack(next_frames, next_first),
  }
  if bootstrap is not None:
    batch["discount"] = bootstrap
  return batch
