"""The replay buffer of a run: the one place that picks its variant.

Four buffers, chosen by :class:`~baselax.anakin.AnakinConfig` and injected into
the loop (the loop never branches on them). All four keep the same store
(:mod:`~baselax.replay.store`) and differ only in the window they sample and
how they draw it:

=============  ==================  =======================================
``n_step``     ``prioritized``     sampled item
=============  ==================  =======================================
1              False               a transition, uniformly
1              True                a transition, by priority
n > 1          False               an n-step window, uniformly
n > 1          True                an n-step window, by priority
=============  ==================  =======================================

A variant is a module (:mod:`~baselax.replay.uniform`,
:mod:`~baselax.replay.prioritised`) with ``trajectory_buffer``, ``sample`` and
``set_priorities`` over the shared store; :data:`VARIANTS` names them and
:func:`variant_name` is the one place that picks one.

Shapes, per (device, seed)::

    add:     steps (num_envs, T, ...)               T = train_every
    sample:  ReplaySample.batch (batch_size, ...)   keys obs, action, reward,
             terminated, next_obs (+ discount for n > 1, weight if prioritised)
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import jax

from baselax.replay import prioritised, uniform
from baselax.replay import store as store_lib
from baselax.replay.codecs import ObsCodec, native_codec
from baselax.replay.records import Batch
from baselax.replay.store import ReplaySample, Store

#: The sampling variants by name; :func:`variant_name` picks one for a config.
VARIANTS = {"uniform": uniform, "prioritised": prioritised}


def variant_name(config: Any) -> str:
  """The :data:`VARIANTS` entry ``config`` asks for (``AnakinConfig.prioritized``)."""
  return "prioritised" if config.prioritized else "uniform"


class Replay(NamedTuple):
  """Pure replay functions (flashbax style); see :func:`make_replay`.

  Attributes:
    init: ``init() -> ReplayState``, an empty buffer.
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
  init: Callable[[], Any]
  add: Callable[[Any, Batch], Any]
  sample: Callable[[Any, jax.Array, jax.Array], ReplaySample]
  set_priorities: Callable[..., Any]
  prioritized: bool
  capacity: int
  final_slots: int
  codec: ObsCodec


def make_replay(config: Any, record: Batch, discount: Optional[float] = None, *,
                codec: Optional[ObsCodec] = None,
                truncation_interval: int = 1) -> Replay:
  """The replay buffer for ``config`` (per device, per seed).

  Args:
    config: an :class:`~baselax.anakin.AnakinConfig`; reads ``buffer_size``,
      ``batch_size``, ``num_envs``, ``n_step``, ``prioritized``,
      ``priority_exponent``, ``importance_exponent(_end)``.
    record: one step record (:func:`~baselax.replay.records.step_record`, e.g.
      :func:`~baselax.replay.records.example_record`; any leading axes, only
      its shapes and dtypes are read): it fixes the layout of a row.
    discount: ``gamma`` for n-step returns (required when ``n_step > 1``).
    codec: how observations are stored (default: as they come).
    truncation_interval: the fewest steps between two truncations of one env
      (:func:`~baselax.envs.protocol.truncation_interval`); 1 is always exact.
  """
  n = config.n_step
  if n > 1 and discount is None:
    raise ValueError("n_step > 1 needs the discount: the trainer reads it from "
                     "agent.discount_factor.")
  codec = native_codec(None) if codec is None else codec
  variant = VARIANTS[variant_name(config)]
  rows, length = config.num_envs, config.buffer_size // config.num_envs
  interval = max(1, min(truncation_interval, length))
  trajectory = variant.trajectory_buffer(
      config, add_batch_size=rows, sample_batch_size=config.batch_size,
      sample_sequence_length=n + 1, period=1, min_length_time_axis=n + 1,
      max_length_time_axis=length)
  store = Store(rows=rows, length=length, n_step=n,
                slots=store_lib.final_slots(length, interval), interval=interval,
                batch_size=config.batch_size, discount=discount, codec=codec,
                layout=store_lib.layout_of(record, codec), trajectory=trajectory)
  bind = functools.partial
  return Replay(init=bind(store_lib.init, store), add=bind(store_lib.add, store),
                sample=bind(variant.sample, store, config),
                set_priorities=bind(variant.set_priorities, store),
                prioritized=bool(config.prioritized), capacity=rows * length,
                final_slots=store.slots, codec=codec)
