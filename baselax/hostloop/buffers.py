"""The host loop's replay buffers, in host (numpy) memory.

:class:`ReplayBuffer` keeps ``obs`` and ``next_obs`` of every transition (any
observation); :class:`FrameStackReplay` keeps every frame of frame-stacked
observations once (Atari: 8x less memory, in the observations' own dtype,
uint8). Both are uniform and one-step, and checkpoint through
``state_dict``/``load_state_dict``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

Batch = dict[str, np.ndarray]


class ReplayBuffer:
  """A uniform ring buffer of transitions in host (numpy) memory.

  Every transition keeps its ``obs`` and ``next_obs``, in the dtype they come
  in (uint8 frames stay uint8).

  Args:
    capacity: number of transitions kept.
    example: one transition ``{key: array}`` (no batch axis) giving shapes and
      dtypes.
  """

  def __init__(self, capacity: int, example: Mapping[str, Any]):
    self.capacity = capacity
    self.storage = {
      k: np.zeros((capacity, *np.shape(v)), np.asarray(v).dtype) for k, v in example.items()
    }
    self.index = 0
    self.size = 0

  @property
  def nbytes(self) -> int:
    return sum(v.nbytes for v in self.storage.values())

  def add(
    self, batch: Batch, env_ids: np.ndarray | None = None, ended: np.ndarray | None = None
  ) -> None:
    """Adds a batch ``{key: (n, ...)}`` of transitions (``env_ids`` and
    ``ended`` are for :class:`FrameStackReplay`; unused here)."""
    del env_ids, ended
    n = len(next(iter(batch.values())))
    idx = (self.index + np.arange(n)) % self.capacity
    for k, v in batch.items():
      self.storage[k][idx] = v
    self.index = (self.index + n) % self.capacity
    self.size = min(self.size + n, self.capacity)

  def sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
    idx = rng.integers(0, self.size, batch_size)
    return {k: v[idx] for k, v in self.storage.items()}

  def state_dict(self) -> dict[str, Any]:
    """Everything the buffer holds, as arrays (for a checkpoint)."""
    return {
      "storage": self.storage,
      "index": np.asarray(self.index, np.int64),
      "size": np.asarray(self.size, np.int64),
    }

  def load_state_dict(self, state: Mapping[str, Any]) -> None:
    self.storage = {k: np.asarray(v) for k, v in state["storage"].items()}
    self.index, self.size = int(state["index"]), int(state["size"])


class FrameStackReplay:
  """A uniform replay buffer that keeps every frame of stacked observations once.

  For observations that are stacks ``(k, *frame)`` of the last ``k`` frames
  along axis 0, shifted by one frame per step (gymnasium's
  ``FrameStackObservation``, ale-py's ``AtariVectorEnv``), storing ``obs`` and
  ``next_obs`` repeats every frame ``2k`` times. As in DQN's own replay
  memory (Mnih et al. 2015), each env here keeps a ring of single frames
  instead: an episode takes ``k - 1`` slots for the older frames of its first
  stack, then one slot per step holding the newest frame of that step's
  observation and its transition (action, reward, terminated), then one slot
  for the final frame. The transition in slot ``a`` has the frames of slots
  ``a-k+1 .. a`` as ``obs`` and ``a-k+2 .. a+1`` as ``next_obs``, so at an
  episode's end ``next_obs`` is the true final observation, and nothing of
  the next episode leaks into it. Atari (k = 4, 84x84 uint8): 7,056 bytes a
  transition instead of 56,448.

  Every :meth:`add` checks the observations it gets against the frames it
  holds, and refuses (ValueError) observations that are not such stacks:
  nothing is ever stored wrong.

  Args:
    capacity: frames kept over all envs (split evenly between them); with
      episodes of ``T`` steps that is about ``capacity * T / (T + k)``
      transitions.
    num_envs: envs that add to the buffer (``env_ids`` of :meth:`add`).
    example: one transition ``{key: array}`` (no batch axis); ``obs`` is a
      stack ``(k, *frame)`` with ``k >= 2``.
  """

  def __init__(self, capacity: int, num_envs: int, example: Mapping[str, Any]):
    obs = np.asarray(example["obs"])
    if obs.ndim < 2 or obs.shape[0] < 2:
      raise ValueError(
        f"FrameStackReplay needs stacked observations (k >= 2, "
        f"*frame) along axis 0, got shape {obs.shape}."
      )
    self.stack = int(obs.shape[0])
    self.num_envs = int(num_envs)
    # Each env's ring must hold a whole stack and its next frame with room to spare.
    self.slots = max(-(-int(capacity) // self.num_envs), 2 * self.stack + 2)
    self.capacity = self.slots * self.num_envs
    self.frames = np.zeros((self.num_envs, self.slots, *obs.shape[1:]), obs.dtype)
    self.fields = {
      k: np.zeros((self.num_envs, self.slots, *np.shape(v)), np.asarray(v).dtype)
      for k, v in example.items()
      if k not in ("obs", "next_obs")
    }
    self.valid = np.zeros((self.num_envs, self.slots), bool)  # slot starts a transition
    self.end = np.zeros(self.num_envs, np.int64)  # slots written so far, per env
    self.starting = np.ones(self.num_envs, bool)  # the next add begins an episode
    self.size = 0  # valid slots (transitions held)

  @property
  def nbytes(self) -> int:
    return self.frames.nbytes + self.valid.nbytes + sum(v.nbytes for v in self.fields.values())

  def _write(
    self, env: int, slot: int, frame: np.ndarray, fields: Mapping[str, Any] | None = None
  ) -> None:
    """Writes ``frame`` (and a transition, if ``fields``) at absolute ``slot``."""
    p = slot % self.slots
    self.size -= int(self.valid[env, p])
    self.frames[env, p] = frame
    self.valid[env, p] = fields is not None
    if fields is not None:
      self.size += 1
      for k, v in fields.items():
        self.fields[k][env, p] = v

  def _stacks(self, env: np.ndarray, slot: np.ndarray, length: int) -> np.ndarray:
    """Frames of absolute slots ``slot-k+1 .. slot-k+length`` of each ``env``:
    ``(n, length, *frame)``."""
    idx = (
      np.asarray(slot)[:, None] + np.arange(1 - self.stack, 1 - self.stack + length)
    ) % self.slots
    return self.frames[np.asarray(env)[:, None], idx]

  def add(self, batch: Batch, env_ids: np.ndarray, ended: np.ndarray) -> None:
    """Adds one step's transitions.

    Args:
      batch: ``{obs, next_obs, action, ...}``, each ``(n, ...)``: one
        transition of each env in ``env_ids``; ``next_obs`` is the true
        next observation (the final one at an episode's end).
      env_ids: ``(n,)`` which env each row is from (each at most once).
      ended: ``(n,)`` the episode ended at this step (terminated or
        truncated): the env's next add starts a new episode.

    Raises:
      ValueError: ``obs`` is not the continuation of the env's previous
        ``next_obs``, or ``next_obs`` is not ``obs`` shifted by one frame.
    """
    obs, next_obs = np.asarray(batch["obs"]), np.asarray(batch["next_obs"])
    k = self.stack
    for row, env in enumerate(np.asarray(env_ids)):
      if self.starting[env]:
        for j in range(k - 1):  # the first stack's older frames
          self._write(env, self.end[env] + j, obs[row, j])
        slot = self.end[env] + k - 1
      else:
        slot = self.end[env] - 1  # holds the previous next_obs' newest frame
        if not np.array_equal(self._stacks(np.array([env]), np.array([slot]), k)[0], obs[row]):
          raise ValueError(
            f"FrameStackReplay: env {env}'s observation is not its previous "
            f"next observation (an episode ended without ended=True?). Use "
            f"ReplayBuffer for envs whose observations are not frame stacks."
          )
      if not np.array_equal(next_obs[row, :-1], obs[row, 1:]):
        raise ValueError(
          f"FrameStackReplay: env {env}'s next observation is not its "
          f"observation shifted by one frame along axis 0; its observations "
          f"are not frame stacks (gymnasium FrameStackObservation). Use "
          f"ReplayBuffer (compact_frames=False) for this env."
        )
      self._write(env, slot, obs[row, -1], {k_: batch[k_][row] for k_ in self.fields})
      self._write(env, slot + 1, next_obs[row, -1])  # next obs' newest frame
      self.end[env] = slot + 2
      self.starting[env] = bool(ended[row])

  def sample(self, rng: np.random.Generator, batch_size: int) -> Batch:
    """``batch_size`` transitions drawn uniformly (with replacement) from
    those held whose frames are all still in the ring."""
    held = np.minimum(self.end, self.slots)
    first = self.end - held  # oldest absolute slot held, per env
    bounds = np.cumsum(held)
    envs, slots = [], []
    count = 0
    for _ in range(1_000):
      u = rng.integers(0, bounds[-1], 2 * (batch_size - count) + 8)
      env = np.searchsorted(bounds, u, side="right")
      slot = first[env] + u - (bounds - held)[env]
      ok = self.valid[env, slot % self.slots] & (
        slot - (self.stack - 1) >= self.end[env] - self.slots
      )
      envs.append(env[ok])
      slots.append(slot[ok])
      count += int(ok.sum())
      if count >= batch_size:
        break
    else:
      raise RuntimeError(
        "FrameStackReplay.sample: no complete transition held; add more steps before sampling."
      )
    env = np.concatenate(envs)[:batch_size]
    slot = np.concatenate(slots)[:batch_size]
    frames = self._stacks(env, slot, self.stack + 1)  # obs and next_obs' new frame
    out = {"obs": frames[:, :-1], "next_obs": frames[:, 1:]}
    out.update({k: v[env, slot % self.slots] for k, v in self.fields.items()})
    return out

  def state_dict(self) -> dict[str, Any]:
    """Everything the buffer holds, as arrays (for a checkpoint)."""
    return {
      "frames": self.frames,
      "fields": self.fields,
      "valid": self.valid,
      "end": self.end,
      "size": np.asarray(self.size, np.int64),
    }

  def load_state_dict(self, state: Mapping[str, Any]) -> None:
    """Restores :meth:`state_dict`; every env's next add starts an episode
    (a resumed run resets its envs)."""
    self.frames = np.asarray(state["frames"])
    self.fields = {k: np.asarray(v) for k, v in state["fields"].items()}
    self.valid = np.asarray(state["valid"])
    self.end = np.asarray(state["end"], np.int64)
    self.size = int(state["size"])
    self.starting[:] = True
