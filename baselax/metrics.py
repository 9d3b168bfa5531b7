"""What a trainer reports: one typed record per chunk, and the helpers around it.

Both trainers (``baselax.anakin`` and ``baselax.hostloop``) produce a
:class:`ChunkRecord` after every chunk, through :meth:`ChunkRecord.from_sums`,
and hand it to their ``on_chunk`` callback; every logger of
``baselax.experiment`` is a sink of it. Nothing here imports a trainer.

Layout: every per-seed field has a leading seed axis ``S``; evaluation
returns are ``(S, E)`` for ``E`` episodes per seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

#: Record fields that count the run (one value per chunk), not per-seed metrics.
COUNTERS = ("chunk", "env_steps", "wall_time", "sps", "updates")


@dataclasses.dataclass(frozen=True)
class ChunkRecord:
  """One chunk of training, reduced to what is logged.

  Attributes:
    chunk: index of the chunk, from 0.
    env_steps: env steps per seed (all envs and devices) after this chunk.
    wall_time: seconds of training since the run began, compilation excluded;
      a resumed run continues the count of the sessions before it.
    sps: env steps per second during this chunk, over all seeds.
    updates: ``(S,)`` updates done in this chunk.
    train_return: ``(S,)`` mean return of the training (exploring) episodes
      that ended in the chunk; NaN if none did.
    train_episodes: ``(S,)`` how many ended.
    eval_returns: ``(S, E)`` greedy evaluation returns after the chunk.
    scalars: ``{name: (S,)}`` mean over the chunk's updates of every scalar
      field of the agent's ``OptimOutput`` (``loss``, ``q_mean``, ...); NaN
      before learning starts.
    point: in a hyperparameter sweep, the grid point these seeds belong to
      (``None`` for a record of a whole run).
    hyperparams: that point's ``{setting: value}``.
    recent_return: ``(S,)`` mean return of the last 100 training episodes
      that ended by the chunk's end (on each device of a run spread over
      several), whatever chunk they ended in: how the MinAtar and Atari
      papers report training; NaN before any ended; ``None`` from a trainer
      that does not keep it.
  """

  chunk: int
  env_steps: int
  wall_time: float
  sps: float
  updates: np.ndarray
  train_return: np.ndarray
  train_episodes: np.ndarray
  eval_returns: np.ndarray
  scalars: Mapping[str, np.ndarray]
  point: int | None = None
  hyperparams: Mapping[str, Any] | None = None
  recent_return: np.ndarray | None = None

  @property
  def eval_return(self) -> np.ndarray:
    """``(S,)`` mean greedy evaluation return per seed."""
    return np.asarray(self.eval_returns).mean(-1)

  @property
  def num_seeds(self) -> int:
    return int(np.shape(self.train_return)[0])

  @classmethod
  def from_sums(
    cls,
    *,
    chunk: int,
    env_steps: int,
    wall_time: float,
    sps: float,
    episode_return_sum: Any,
    episodes: Any,
    updates: Any,
    scalar_sums: Mapping[str, Any],
    eval_returns: Any,
    recent_return_sum: Any = None,
    recent_episodes: Any = None,
  ) -> ChunkRecord:
    """The one place sums over a chunk become means.

    Args:
      episode_return_sum: ``(S,)`` summed returns of the training episodes
        that ended in the chunk.
      episodes: ``(S,)`` how many ended.
      updates: ``(S,)`` updates in the chunk.
      scalar_sums: ``{name: (S,)}`` sums over the chunk's updates.
      eval_returns: ``(S, E)``.
      recent_return_sum: ``(S,)`` summed returns of the last training
        episodes (up to 100 per device), or ``None`` (no :attr:`recent_return`).
      recent_episodes: ``(S,)`` how many episodes ``recent_return_sum`` sums,
        or ``None``.
    """
    episodes = np.asarray(episodes, np.float64)
    updates = np.asarray(updates, np.float64)
    recent_return = None
    with np.errstate(invalid="ignore", divide="ignore"):
      train_return = np.asarray(episode_return_sum, np.float64) / episodes
      scalars = {k: np.asarray(v, np.float64) / updates for k, v in scalar_sums.items()}
      if recent_return_sum is not None:
        recent_return = np.asarray(recent_return_sum, np.float64) / np.asarray(
          recent_episodes, np.float64
        )
    return cls(
      chunk=int(chunk),
      env_steps=int(env_steps),
      wall_time=float(wall_time),
      sps=float(sps),
      updates=updates,
      train_return=train_return,
      train_episodes=episodes,
      eval_returns=np.asarray(eval_returns, np.float64),
      scalars=scalars,
      recent_return=recent_return,
    )

  def to_dict(self) -> dict[str, Any]:
    """The flat ``{name: value}`` form of ``metrics.jsonl`` (counters first)."""
    out: dict[str, Any] = {k: getattr(self, k) for k in COUNTERS}
    if self.point is not None:
      out.update(point=self.point, hyperparams=dict(self.hyperparams or {}))
    out.update(train_return=self.train_return, train_episodes=self.train_episodes)
    if self.recent_return is not None:
      out.update(recent_return=self.recent_return)
    out.update(self.scalars)
    out.update(eval_return=self.eval_return, eval_returns=self.eval_returns)
    return out

  @classmethod
  def from_dict(cls, values: Mapping[str, Any]) -> ChunkRecord:
    """Inverse of :meth:`to_dict` (unknown names are scalars of the agent)."""
    known = set(COUNTERS) | {
      "train_return",
      "train_episodes",
      "eval_return",
      "eval_returns",
      "point",
      "hyperparams",
      "recent_return",
    }
    recent = values.get("recent_return")
    return cls(
      chunk=int(values["chunk"]),
      env_steps=int(values["env_steps"]),
      wall_time=float(values["wall_time"]),
      sps=float(values["sps"]),
      updates=np.asarray(values["updates"], np.float64),
      train_return=np.asarray(values["train_return"], np.float64),
      train_episodes=np.asarray(values["train_episodes"], np.float64),
      eval_returns=np.asarray(values["eval_returns"], np.float64),
      scalars={k: np.asarray(v, np.float64) for k, v in values.items() if k not in known},
      point=None if values.get("point") is None else int(values["point"]),
      hyperparams=values.get("hyperparams"),
      recent_return=None if recent is None else np.asarray(recent, np.float64),
    )

  def select(self, runs: Any, **labels: Any) -> ChunkRecord:
    """The record of some of its runs (``runs``: indices or a slice of the
    seed axis), e.g. one sweep point's seeds; ``labels`` set ``point`` and
    ``hyperparams``."""
    pick = lambda x: np.asarray(x)[runs]  # noqa: E731
    return dataclasses.replace(
      self,
      updates=pick(self.updates),
      train_return=pick(self.train_return),
      train_episodes=pick(self.train_episodes),
      eval_returns=pick(self.eval_returns),
      scalars={k: pick(v) for k, v in self.scalars.items()},
      recent_return=None if self.recent_return is None else pick(self.recent_return),
      **labels,
    )


@dataclasses.dataclass
class TrainResult:
  """What a trainer's ``train`` returns (``baselax.anakin``, ``baselax.hostloop``).

  Attributes:
    params: the agent's params, leading axis = seed.
    state: the final ``TrainState`` of every (device, seed), layout
      ``(devices, seeds per device, ...)`` (see ``anakin/program.py``).
    metrics: per chunk (leading axis = chunk), the fields of
      :class:`~baselax.metrics.ChunkRecord`: ``env_steps``, ``wall_time``,
      ``sps``, ``updates``, ``train_return``, ``train_episodes``,
      ``eval_return`` ``(chunks, seeds)``, ``eval_returns`` ``(chunks, seeds,
      episodes)`` and one ``(chunks, seeds)`` entry per scalar field of the
      agent's ``OptimOutput``; plus scalars ``compile_time`` and
      ``total_time`` (this session's, seconds).
    history: the records themselves, one per chunk (of every session of a
      resumed run).
    config: the config of the run.
    derived: the loop sizes derived from it.
    stopped_early: the run stopped before its last chunk (``on_chunk``
      returned True, or Ctrl-C); its checkpoint can be resumed.
    first_chunk: the chunk this session started from (0 unless resumed).
  """

  params: Any
  state: Any
  metrics: dict[str, Any]
  history: list[ChunkRecord]
  config: Any
  derived: Any
  stopped_early: bool = False
  first_chunk: int = 0


def seed_mean(x: Any) -> float:
  """Mean over seeds of the finite values; NaN if there are none."""
  x = np.asarray(x, np.float64)
  finite = np.isfinite(x)
  return float(x[finite].mean()) if finite.any() else float("nan")


def format_record(record: ChunkRecord) -> str:
  """The one-line text form of a record (means over seeds), for logs and consoles."""
  loss = seed_mean(record.scalars.get("loss", np.nan))
  return (
    f"env steps {record.env_steps:>11,} | sps {record.sps:>9,.0f} | "
    f"train return {seed_mean(record.train_return):7.1f} | eval return "
    f"{seed_mean(record.eval_return):7.1f} | loss {loss:.4f}"
  )


def stack_history(history: list[ChunkRecord]) -> dict[str, Any]:
  """Records -> ``{name: array}`` with a leading chunk axis (NaN where absent)."""
  rows = [r.to_dict() for r in history]
  metrics = {}
  for k in sorted(set().union(*rows)) if rows else ():
    shape = np.shape(next(row[k] for row in rows if k in row))
    metrics[k] = np.stack(
      [np.asarray(row[k]) if k in row else np.full(shape, np.nan) for row in rows]
    )
  return metrics


def scalar_fields(tree: Any) -> dict[str, jax.Array]:
  """The scalar leaves of an ``OptimOutput`` pytree, named by their path.

  ``DQN.OptimOutput(loss=..., q_mean=...)`` gives ``{"loss": ..., "q_mean": ...}``;
  non-scalar leaves (e.g. per-sample TD errors) are not logged.
  """
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  out = {}
  for path, leaf in leaves:
    if jnp.ndim(leaf) == 0:
      name = (
        "/".join(str(getattr(p, "name", getattr(p, "key", getattr(p, "idx", p)))) for p in path)
        or "value"
      )
      out[name] = jnp.asarray(leaf, jnp.float32)
  return out


def zero_scalars(agent: Any, params: Any, optimizer_state: Any, batch: Any) -> dict[str, jax.Array]:
  """Zeros shaped like the logged scalars of ``agent.update`` (traced only).

  What a step that does not learn reports, so both sides of a learn/skip
  choice return the same pytree.
  """
  shapes = jax.eval_shape(
    lambda p, o, b: scalar_fields(agent.update(p, o, b)[0]), params, optimizer_state, batch
  )
  return {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items()}


def all_finite(tree: Any) -> jax.Array:
  """``[]`` float 1.0 if every floating leaf of ``tree`` is finite, else 0.0."""
  leaves = [
    jnp.all(jnp.isfinite(x))
    for x in jax.tree.leaves(tree)
    if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)
  ]
  return jnp.all(jnp.stack(leaves)).astype(jnp.float32) if leaves else jnp.ones(())


def to_json(value: Any) -> Any:
  """numpy -> JSON-able lists; NaN/inf -> None (strict JSON has no NaN)."""
  if isinstance(value, dict):
    return {k: to_json(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_json(v) for v in value]
  array = np.asarray(value)
  if array.dtype.kind in "fc":
    array = array.astype(np.float64)
    if not array.ndim:
      return float(array) if np.isfinite(array) else None
    # An object array: NaN/inf become None, i.e. null in JSON.
    return np.where(np.isfinite(array), array, np.array(None, dtype=object)).tolist()
  if array.dtype.kind in "iub":
    return array.tolist()
  return value


def from_json(value: Any) -> Any:
  """Inverse of :func:`to_json` for record values (None -> NaN)."""
  if isinstance(value, list):
    return np.array(value, dtype=np.float64)  # None -> nan
  if value is None:
    return float("nan")
  return value


def record_to_json(record: ChunkRecord) -> dict[str, Any]:
  return to_json(record.to_dict())


def record_from_json(values: Mapping[str, Any]) -> ChunkRecord:
  return ChunkRecord.from_dict({k: from_json(v) for k, v in values.items()})
