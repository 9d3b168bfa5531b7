"""Bytes per stored transition of each replay buffer kind (``--memory-only``)."""

from __future__ import annotations

from typing import Any

import jax

from baselax import anakin
from baselax.errors import ConfigError


def memory_rows(env, agent, args) -> list[dict[str, Any]]:
  """Bytes per stored transition of each buffer kind and observation storage.

  Each buffer (``--buffer-size``, N = the first ``--num-envs``) is
  initialised for real and its state's arrays summed: the bytes a run holds
  per buffer, over its capacity (what ``baselax.replay.MemoryPlan`` counts).
  """
  from baselax import replay
  from baselax.envs.protocol import truncation_interval

  n = args.num_envs[0]
  example = replay.example_record(agent, env)
  rows = []
  for storage in ("float32", "auto"):
    for n_step, prioritized in ((1, False), (1, True), (3, False), (3, True)):
      config = anakin.AnakinConfig(
        buffer_size=max(args.buffer_size, 2 * n),
        num_envs=n,
        n_step=n_step,
        batch_size=min(args.batch_size, args.buffer_size),
        prioritized=prioritized,
        obs_storage=storage,
      )
      try:
        codec = replay.obs_codec(storage, env)
      except ConfigError:
        continue
      buf = replay.make_replay(
        replay.ReplayConfig.of(config),
        example,
        0.99,
        codec=codec,
        truncation_interval=truncation_interval(env),
      )
      state = jax.jit(buf.init)()
      nbytes = sum(x.nbytes for x in jax.tree.leaves(state))
      rows.append(
        dict(
          kind="memory",
          buffer=replay.memory.buffer_kind(config),
          requested=storage,
          obs_storage=codec.name,
          obs_bytes=codec.obs_bytes,
          stored_obs_bytes=codec.stored_bytes,
          capacity=buf.capacity,
          bytes_per_transition=nbytes / buf.capacity,
        )
      )
      del state
  return rows
