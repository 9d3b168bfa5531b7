"""Replay memory for the Anakin loop: one copy of each observation, exact at truncation.

Modules, bottom up:

* :mod:`~baselax.replay.integers`: the proof that observations are integers.
* :mod:`~baselax.replay.codecs`: how one observation is stored (``obs_storage``).
* :mod:`~baselax.replay.records`: one env step as a row of uint32 words.
* :mod:`~baselax.replay.windows`: n-step returns from a window of steps.
* :mod:`~baselax.replay.store`: the store every variant shares (layout, add,
  the gather of sampled windows).
* :mod:`~baselax.replay.uniform`, :mod:`~baselax.replay.prioritized`: the
  sampling variants, a module each.
* :mod:`~baselax.replay.buffers`: :class:`ReplayConfig`, the sampling
  variants by name (:func:`register_sampling`) and :func:`make_replay`.
* :mod:`~baselax.replay.memory`: what a run's buffers take, checked before
  compiling.
"""

from baselax.replay.buffers import SAMPLINGS, Replay, ReplayConfig, make_replay, register_sampling
from baselax.replay.codecs import ObsCodec, obs_codec
from baselax.replay.memory import MemoryPlan
from baselax.replay.records import example_record, step_record
from baselax.replay.store import ReplaySample, ReplayState

__all__ = [
  "SAMPLINGS",
  "MemoryPlan",
  "ObsCodec",
  "Replay",
  "ReplayConfig",
  "ReplaySample",
  "ReplayState",
  "example_record",
  "make_replay",
  "obs_codec",
  "register_sampling",
  "step_record",
]
