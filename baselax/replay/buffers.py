"""The replay buffer of a run: its config, the sampling variants by name, and the builder.

A buffer is built from a :class:`ReplayConfig` (explicit fields, as
flashbax's builders take explicit arguments): the sampling variant (by
name, :data:`SAMPLINGS`) and ``n_step`` give four buffers by default, all
over the same store (:mod:`~baselax.replay.store`), differing only in the
window they sample and how they draw it:

=============  ==================  =======================================
``n_step``     ``sampling``        sampled item
=============  ==================  =======================================
1              uniform             a transition, uniformly
1              prioritized         a transition, by priority
n > 1          uniform             an n-step window, uniformly
n > 1          prioritized         an n-step window, by priority
=============  ==================  =======================================

A sampling variant is a module (:mod:`~baselax.replay.uniform`,
:mod:`~baselax.replay.prioritized`) with ``trajectory_buffer``, ``sample``,
``set_priorities`` and ``USES_PRIORITIES`` (and ``SKIPS_PADS`` if it draws
around pad steps, as uniform sampling does); :func:`register_sampling` adds
one (``--sampling NAME`` then picks it). The loop calls the returned
:class:`Replay`'s functions; of the variant it asks only whether it uses
priorities (``Replay.prioritized``: the learner then returns them).

What is flashbax's and what is ours: flashbax's trajectory buffers keep the
write head and, for prioritized sampling, the sum tree
(``make_trajectory_buffer``, ``make_prioritised_trajectory_buffer``);
their experience arrays are not used. The store (one copy of each
observation, encoded; the true final observations at truncations), the
n-step windows, the draws and the importance weights are ours
(:mod:`~baselax.replay.store`, :mod:`~baselax.replay.windows`, the variants).

Shapes, per (device, seed)::

    add:     steps (num_envs, T, ...)               T = train_every
    sample:  ReplaySample.batch (batch_size, ...)   keys obs, action, reward,
             terminated, next_obs (+ discount for n > 1, weight if prioritized)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from baselax.envs.protocol import truncation_interval
from baselax.errors import ConfigError
from baselax.replay import prioritized, uniform
from baselax.replay import store as store_lib
from baselax.replay.codecs import ObsCodec, native_codec, obs_codec
from baselax.replay.records import Batch, example_record
from baselax.replay.store import ReplaySample, Store

#: The sampling variants by name (``ReplayConfig.sampling``, ``--sampling``).
SAMPLINGS: dict[str, Any] = {"uniform": uniform, "prioritized": prioritized}

#: What a sampling variant module offers.
VARIANT_API = ("trajectory_buffer", "sample", "set_priorities", "USES_PRIORITIES")


def register_sampling(name: str, variant: Any, *, overwrite: bool = False) -> None:
  """Registers a sampling variant: a module (or namespace) with
  :data:`VARIANT_API`, as :mod:`~baselax.replay.uniform`.

  Raises:
    ValueError: the name is taken (``overwrite=True`` replaces it) or the
      variant lacks part of :data:`VARIANT_API`.
  """
  missing = [a for a in VARIANT_API if not hasattr(variant, a)]
  if missing:
    raise ValueError(
      f"sampling variant {name!r} lacks {', '.join(missing)} (see baselax.replay.uniform)."
    )
  if name in SAMPLINGS and not overwrite:
    raise ValueError(
      f"a sampling variant named {name!r} is registered already; pick "
      f"another name or pass overwrite=True."
    )
  SAMPLINGS[name] = variant


def variant(name: str) -> Any:
  """The sampling variant registered as ``name``.

  Raises:
    ConfigError: no such variant; the message lists them.
  """
  if name not in SAMPLINGS:
    raise ConfigError(
      f"sampling {name!r} is not a registered sampling variant "
      f"({', '.join(sorted(SAMPLINGS))}); register yours with "
      f"baselax.replay.register_sampling."
    )
  return SAMPLINGS[name]


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
  """A replay buffer (one per device and seed), field by field.

  Attributes:
    buffer_size: capacity in transitions, rounded down to a multiple of
      ``num_envs`` (each env keeps ``buffer_size // num_envs`` steps).
    num_envs: envs adding a step each per iteration (the buffer's rows).
    batch_size: items per sample.
    n_step: steps a sampled item spans (1: a transition).
    sampling: a registered sampling variant (:data:`SAMPLINGS`).
    priority_exponent: prioritized sampling's alpha.
    importance_exponent: prioritized sampling's beta at the start of the run.
    importance_exponent_end: its beta at the end.
    obs_storage: how observations are stored (``baselax.replay.codecs``).
  """

  buffer_size: int
  num_envs: int
  batch_size: int
  n_step: int = 1
  sampling: str = "uniform"
  priority_exponent: float = 0.6
  importance_exponent: float = 0.4
  importance_exponent_end: float = 1.0
  obs_storage: str = "auto"

  @classmethod
  def of(cls, config: Any) -> ReplayConfig:
    """The replay a trainer's config (a :class:`~baselax.training.TrainingConfig`) asks for."""
    return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})

  @property
  def uses_priorities(self) -> bool:
    return bool(variant(self.sampling).USES_PRIORITIES)

  @property
  def kind(self) -> str:
    """``item`` or ``n-step``, after the sampling variant's name unless uniform."""
    kind = "item" if self.n_step == 1 else "n-step"
    return kind if self.sampling == "uniform" else f"{self.sampling} {kind}"


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
    prioritized: whether the variant uses priorities (the learner then
      returns them from the TD errors).
    capacity: transitions the buffer holds, ``num_envs * (buffer_size // num_envs)``.
    final_slots: ``K``, true final observations kept per env.
    codec: how observations are stored.
    store: the static description of the store the functions read
      (:class:`~baselax.replay.store.Store`): what a caller needs to read
      every held item (:func:`~baselax.replay.store.transitions`).
  """

  init: Callable[[], Any]
  add: Callable[[Any, Batch], Any]
  sample: Callable[[Any, jax.Array, jax.Array], ReplaySample]
  set_priorities: Callable[..., Any]
  prioritized: bool
  capacity: int
  final_slots: int
  codec: ObsCodec
  store: Any = None


def make_replay(
  config: ReplayConfig,
  record: Batch,
  discount: float | None = None,
  *,
  codec: ObsCodec | None = None,
  truncation_interval: int = 1,
) -> Replay:
  """The replay buffer for ``config`` (per device, per seed).

  Args:
    config: the buffer (:class:`ReplayConfig`; ``ReplayConfig.of(trainer
      config)`` for a run's).
    record: one step record (:func:`~baselax.replay.records.step_record`, e.g.
      :func:`~baselax.replay.records.example_record`; any leading axes, only
      its shapes and dtypes are read): it fixes the layout of a row.
    discount: ``gamma`` for n-step returns (required when ``n_step > 1``).
    codec: how observations are stored (default: as they come).
    truncation_interval: the fewest steps between two truncations of one env
      (:func:`~baselax.envs.protocol.truncation_interval`); 1 is always exact.
  """
  if not isinstance(config, ReplayConfig):
    raise TypeError(
      f"make_replay takes a ReplayConfig, got {type(config).__name__}; "
      f"ReplayConfig.of(trainer_config) is a run's."
    )
  n = config.n_step
  if n > 1 and discount is None:
    raise ValueError(
      "n_step > 1 needs the discount: the trainer reads it from agent.discount_factor."
    )
  codec = native_codec(None) if codec is None else codec
  chosen = variant(config.sampling)
  if "pad" in record and not getattr(chosen, "SKIPS_PADS", False):
    raise ConfigError(
      f"sampling={config.sampling} cannot skip pad steps (the reset-only steps of a "
      f"NEXT_STEP vector env that cannot reset single envs); use sampling=uniform, or "
      f"gymnasium.make_vec(..., vectorization_mode='sync') or autoreset_mode=SAME_STEP."
    )
  rows, length = config.num_envs, config.buffer_size // config.num_envs
  interval = max(1, min(truncation_interval, length))
  window = codec.stack + n  # frames before the transition, its n steps, the next
  if length < 2 * window:
    raise ConfigError(
      f"replay: buffer_size // num_envs = {length} steps per env cannot hold two sampled "
      f"windows of {window} steps; raise buffer_size to at least {2 * window * rows}."
    )
  trajectory = chosen.trajectory_buffer(
    config,
    add_batch_size=rows,
    sample_batch_size=config.batch_size,
    sample_sequence_length=window,
    period=1,
    min_length_time_axis=window,
    max_length_time_axis=length,
  )
  store = Store(
    rows=rows,
    length=length,
    n_step=n,
    slots=store_lib.final_slots(length, interval),
    interval=interval,
    batch_size=config.batch_size,
    discount=discount,
    codec=codec,
    layout=store_lib.layout_of(record, codec),
    trajectory=trajectory,
  )
  bind = functools.partial
  return Replay(
    init=bind(store_lib.init, store),
    add=bind(store_lib.add, store),
    sample=bind(chosen.sample, store, config),
    set_priorities=bind(chosen.set_priorities, store),
    prioritized=bool(chosen.USES_PRIORITIES),
    capacity=rows * length,
    final_slots=store.slots,
    codec=codec,
    store=store,
  )


def run_replay(
  agent: Any, env: Any, config: Any, discount: float | None = None, example: Batch | None = None
) -> Replay:
  """The replay buffer of a run of ``agent`` on ``env`` with trainer ``config``:
  one copy of each observation, stored as ``config.obs_storage`` says
  (:func:`~baselax.replay.codecs.obs_codec`), true final observations kept as
  often as the env can truncate.

  ``discount``: the agent's, for n-step returns; ``example``: its step record
  (:func:`~baselax.replay.records.example_record`), if known.
  """
  return make_replay(
    ReplayConfig.of(config),
    example_record(agent, env) if example is None else example,
    discount,
    codec=obs_codec(config.obs_storage, env),
    truncation_interval=truncation_interval(env),
  )
