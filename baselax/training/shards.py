"""Every process's own part of a multi-process run's training state.

In a multi-process run the training state (params, optimizer states, replay
buffers, env states, keys, counters) lives on the devices of every process:
each process holds the shards of its own devices. A checkpoint of the whole
state is then one file per process, written by that process
(:class:`ShardStore`), beside process 0's orbax checkpoint of the params and
metrics (``baselax.training.checkpoint``, what evaluation reads)::

    <checkpoints>/shards/process-<p>/<step>.npz    process p's shards, leaf by leaf
    <checkpoints>/shards/process-<p>/<step>.json   fingerprint, history, the npz's size and SHA-256

The JSON is written last (write, then rename): it commits the step. A shard
whose npz does not match its JSON is not intact. On resume every process
lists its intact steps and all continue from the newest step that every
process holds whole (:func:`common_step`); a process that holds none, or a
fingerprint that differs (another process or device count, another run),
refuses on every process at once.

Why files of our own rather than orbax's multi-process checkpointing: a
process's shards are only its own devices' arrays, so each process can write
them without a barrier inside the write, to its own disk when the hosts
share no filesystem (each host keeps ``RUN_DIR/checkpoints/shards/process-<p>``
under the same ``RUN_DIR`` path), and a lost process can never leave another
process blocked in a half-finished collective write.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from baselax.errors import ConfigError

#: Steps each process keeps (older ones are deleted after a save).
KEEP = 3


def local_leaves(state: Any) -> list[np.ndarray]:
  """This process's shards of every leaf of ``state`` (global arrays), each
  ``(local devices, *shard shape)`` in the order of ``addressable_shards``."""
  return [
    np.stack([np.asarray(s.data) for s in leaf.addressable_shards])
    for leaf in jax.tree.leaves(state)
  ]


def place_local(like: Any, leaves: Sequence[np.ndarray]) -> Any:
  """Global arrays shaped and placed as ``like``'s, from this process's shards
  (:func:`local_leaves` of a state of the same layout)."""

  def place(x: Any, local: np.ndarray) -> Any:
    shards = x.addressable_shards
    arrays = [
      jax.device_put(local[i].reshape(s.data.shape), s.device) for i, s in enumerate(shards)
    ]
    return jax.make_array_from_single_device_arrays(x.shape, x.sharding, arrays)

  flat, treedef = jax.tree.flatten(like)
  return jax.tree.unflatten(treedef, [place(x, a) for x, a in zip(flat, leaves, strict=True)])


def _digest(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


class ShardStore:
  """This process's shards of a multi-process run's checkpoints (see the module doc).

  Args:
    directory: the run's checkpoint directory (its ``shards`` folder is used).
    process: this process's index.
    every_chunks: chunks between checkpoints (the driver reads it, as a
      ``Checkpointer``'s).
  """

  def __init__(self, directory: str, process: int, every_chunks: int = 1):
    self.directory = os.path.join(os.path.abspath(directory), "shards", f"process-{process}")
    self.process = process
    self.every_chunks = every_chunks
    os.makedirs(self.directory, exist_ok=True)

  def _paths(self, step: int) -> tuple[str, str]:
    base = os.path.join(self.directory, str(step))
    return base + ".npz", base + ".json"

  def save(self, step: int, state: Any, history: list[Any], fingerprint: dict[str, Any]) -> None:
    """Writes this process's shards of ``state`` at ``step``, the JSON last."""
    npz, meta = self._paths(step)
    leaves = local_leaves(state)
    with open(npz + ".tmp", "wb") as f:
      np.savez(f, *leaves)
    os.replace(npz + ".tmp", npz)
    record = {
      "step": step,
      "fingerprint": fingerprint,
      "history": history,
      "leaves": len(leaves),
      "npz": [os.path.getsize(npz), _digest(npz)],
    }
    with open(meta + ".tmp", "w") as f:
      json.dump(record, f)
    os.replace(meta + ".tmp", meta)
    for old in self.steps()[:-KEEP]:
      for path in self._paths(old):
        if os.path.exists(path):
          os.remove(path)

  def steps(self) -> list[int]:
    """Steps with a committed JSON, oldest first."""
    names = os.listdir(self.directory) if os.path.isdir(self.directory) else []
    return sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())

  def latest_step(self) -> int | None:
    steps = self.steps()
    return steps[-1] if steps else None

  def intact_steps(self) -> list[int]:
    """Committed steps whose npz is the one the JSON names, oldest first."""
    intact = []
    for step in self.steps():
      npz, meta = self._paths(step)
      try:
        with open(meta) as f:
          size, digest = json.load(f)["npz"]
        if os.path.getsize(npz) == size and _digest(npz) == digest:
          intact.append(step)
      except (OSError, ValueError, KeyError):
        continue
    return intact

  def check(self, step: int, fingerprint: dict[str, Any]) -> str | None:
    """Why the shard at ``step`` cannot be continued by a run of
    ``fingerprint`` (another run, or another process or device count: both
    counts named), or ``None``."""
    from baselax.training.checkpoint import differences

    with open(self._paths(step)[1]) as f:
      saved = json.load(f)["fingerprint"]
    diffs = differences(saved, fingerprint)
    if not diffs:
      return None
    return (
      f"checkpoint {step} of this multi-process run (process {self.process}'s part) belongs "
      f"to a different run and cannot be continued: " + "; ".join(diffs) + ". Restart "
      "every process with the checkpoint's settings and counts, or start a new run."
    )

  def load(self, step: int, like: Any, fingerprint: dict[str, Any]) -> tuple[Any, list[Any]]:
    """``(state placed as like's, history)`` of this process's shards at ``step``.

    Raises:
      ConfigError: the shard is of another run (its fingerprint differs).
    """
    error = self.check(step, fingerprint)
    if error:
      raise ConfigError(error)
    npz, meta = self._paths(step)
    with open(meta) as f:
      record = json.load(f)
    with np.load(npz) as data:
      leaves = [data[f"arr_{i}"] for i in range(record["leaves"])]
    return place_local(like, leaves), record["history"]


def common_step(mine: Sequence[int], gather: Callable[[np.ndarray], np.ndarray]) -> int | None:
  """The newest step every process holds intact (``None``: process 0 holds
  none, and the run starts afresh; another process's shards from a save that
  process 0 never finished are written over).

  ``mine``: this process's intact steps; ``gather``: an all-gather over the
  processes of a fixed-size int64 array (``multihost_utils.process_allgather``).

  Raises:
    ConfigError: process 0 holds a checkpoint, and no step is held by all:
      names what each process holds.
  """
  width = 16
  padded = np.full(width, -1, np.int64)
  newest = sorted(mine)[-width:]
  padded[: len(newest)] = newest
  held = np.asarray(gather(padded)).reshape(-1, width)
  sets = [{int(s) for s in row if s >= 0} for row in held]
  if not sets[0]:
    return None
  common = set.intersection(*sets)
  if not common:
    holds = "; ".join(f"process {p}: {sorted(s) or 'none'}" for p, s in enumerate(sets))
    raise ConfigError(
      f"no checkpoint is held whole by every process ({holds}): restart with the "
      f"processes (and their run directories) that wrote them, or start a new run."
    )
  return max(common)
