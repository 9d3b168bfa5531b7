"""Checkpoints of a whole Anakin run, with orbax-checkpoint.

A checkpoint is everything needed to continue a run exactly: the ``TrainState``
of every (device, seed) (params, optimizer and policy states, replay buffer,
env states, keys, counters), the number of chunks done, and the per-chunk
metrics so far. Continuing from it runs the same compiled chunks on the same
state, so a resumed run ends with bit-identical params to an uninterrupted one
(on the same backend and device count).

Layout of ``directory`` (an orbax ``CheckpointManager``; step = chunks done)::

    <chunks_done>/state    the TrainState, (devices, seeds, ...) host arrays
    <chunks_done>/params   the params of device 0, leading axis seeds
    <chunks_done>/meta     JSON: fingerprint, chunks done, metrics history

The fingerprint (trainer config, agent class, env, and whatever the caller
adds) is compared on restore: a checkpoint of another env or config is
refused with a message listing what differs.

Every finished checkpoint also gets ``<chunks_done>/manifest.json``: the
size and SHA-256 of each of its files. Resuming verifies it
(:meth:`Checkpointer.intact_step`): a checkpoint with a file truncated,
changed, missing or added since it was written is set aside, with one line
naming it, and the run resumes from the newest intact one. (Orbax finalises
a checkpoint atomically: a writer killed midway leaves no step at all.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from baselax import metrics as metrics_lib
from baselax.errors import ConfigError
from baselax.training import config as config_lib

logger = logging.getLogger("baselax.anakin")


class Restored(NamedTuple):
  """What :meth:`Checkpointer.restore` returns (host numpy arrays)."""

  state: Any
  chunks_done: int
  history: list[metrics_lib.ChunkRecord]
  extra: Any = None  # the JSON the trainer saved beside the state (``save(extra=)``)


def run_identity(
  config: Any, agent: Any, env: Any, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
  """The trainer config (``trainer.<field>``), agent class, env name and
  ``extra`` settings (``meta.<key>``, e.g. agent hyper-parameters) of a run.

  The whole trainer config is in, total_env_steps and eval_every too: the
  chunk boundaries and any schedule over the run depend on them. Checkpoints
  compare it (an exact continuation needs the same run), and so do the
  processes of a multi-process run (they must run the same program).
  """
  out = {f"trainer.{k}": v for k, v in metrics_lib.to_json(dataclasses.asdict(config)).items()}
  out["agent"] = type(agent).__name__
  # The env protocol's identity string (a GymnaxEnv's is its gymnax name).
  out["env"] = getattr(env, "env_id", None) or getattr(
    getattr(env, "env", None), "name", type(env).__name__
  )
  out.update({f"meta.{k}": v for k, v in metrics_lib.to_json(dict(extra or {})).items()})
  return out


def _describe_tree(tree: Any) -> dict[str, str]:
  """``{leaf path: "shape dtype"}`` for comparing checkpoint and run state
  (read from the arrays' metadata: nothing is copied off a device)."""
  return {
    jax.tree_util.keystr(
      path
    ): f"{tuple(np.shape(x))} {getattr(x, 'dtype', None) or np.asarray(x).dtype}"
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]
  }


def differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
  """``"key: saved X, now Y"`` for every key whose value differs."""
  out = []
  for key in sorted(set(saved) | set(current)):
    a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
    if a != b:
      out.append(f"{key}: checkpoint has {a!r}, this run has {b!r}")
  return out


MANIFEST = "manifest.json"


def manifest(step_dir: str) -> dict[str, list[Any]]:
  """``{relative path: [size, sha256]}`` of every file under ``step_dir``
  (but the manifest itself)."""
  out = {}
  for root, _, files in os.walk(step_dir):
    for name in files:
      path = os.path.join(root, name)
      rel = os.path.relpath(path, step_dir)
      if rel == MANIFEST:
        continue
      digest = hashlib.sha256()
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          digest.update(block)
      out[rel] = [os.path.getsize(path), digest.hexdigest()]
  return out


def damage(step_dir: str) -> str | None:
  """What is wrong with the checkpoint in ``step_dir`` (``None``: intact)."""
  path = os.path.join(step_dir, MANIFEST)
  try:
    with open(path) as f:
      written = json.load(f)
  except FileNotFoundError:
    # Orbax finalises a checkpoint atomically; one without a manifest was
    # written before manifests existed, or its writer was killed right
    # after: nothing to verify it against.
    logger.info("%s has no %s: not verified", step_dir, MANIFEST)
    return None
  except ValueError:
    return "its manifest.json is damaged"
  found = manifest(step_dir)
  for rel in sorted(set(written) | set(found)):
    if rel not in found:
      return f"{rel} is missing"
    if rel not in written:
      return f"{rel} was not in it when it was written"
    if found[rel][0] != written[rel][0]:
      return f"{rel} has {found[rel][0]} bytes, {written[rel][0]} were written"
    if found[rel][1] != written[rel][1]:
      return f"{rel} changed since it was written"
  return None


class Checkpointer:
  """Saves and restores a run's full state with orbax (see the module doc).

  Args:
    directory: where checkpoints go (created if needed).
    every_chunks: save after every this many chunks (and always at the end,
      on a requested stop and on Ctrl-C).
    max_to_keep: checkpoints kept on disk (older ones are deleted).
    renamed: fingerprint keys renamed since checkpoints were written, ``{old
      key: (new key, convert)}`` (the trainer's settings are known already;
      an experiment adds its agent's, ``meta.agent.<name>``).
    introduced: fingerprint keys added since, ``{key: the value runs had
      before}``.
    writer: this process is the run directory's one writer (it holds its
      ``run.lock``): the unfinished saves of a writer that was killed
      (orbax's ``*.orbax-checkpoint-tmp*`` directories) are deleted. A
      reader (evaluation beside a live run) must leave them.

  What must match for a checkpoint to be continued is the run's fingerprint:
  :func:`run_identity` plus the device count, which ``anakin.train`` builds
  and passes to :meth:`save` and :meth:`restore`.
  """

  def __init__(
    self,
    directory: str,
    *,
    every_chunks: int = 1,
    max_to_keep: int = 2,
    writer: bool = False,
    renamed: Mapping[str, tuple[str, Any]] | None = None,
    introduced: Mapping[str, Any] | None = None,
  ):
    if isinstance(every_chunks, bool) or not isinstance(every_chunks, int) or every_chunks < 1:
      raise ValueError(f"every_chunks must be an integer >= 1, got {every_chunks!r}.")
    import orbax.checkpoint as ocp  # imported here: orbax is slow to import

    self._ocp = ocp
    self.directory = os.path.abspath(os.path.expanduser(directory))
    self.every_chunks = every_chunks
    self.renamed = dict(renamed or {})
    # Runs before the process count was in the fingerprint had one process.
    self.introduced = {"num_processes": 1, **(introduced or {})}
    # In a multi-process run only process 0 makes a Checkpointer: orbax must
    # not wait for the others at its barriers (and then cannot create the
    # directory itself).
    os.makedirs(self.directory, exist_ok=True)
    multiprocessing = (
      ocp.options.MultiprocessingOptions(primary_host=0, active_processes={0})
      if jax.process_count() > 1
      else ocp.options.MultiprocessingOptions()
    )
    self._intact: int | None = None  # verified by intact_step, or written here
    self._manager = ocp.CheckpointManager(
      self.directory,
      options=ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        create=False,
        multiprocessing_options=multiprocessing,
        cleanup_tmp_directories=writer,
      ),
    )

  def latest_step(self) -> int | None:
    """Chunks done at the newest checkpoint, or ``None`` if there is none."""
    return self._manager.latest_step()

  def intact_step(self) -> int | None:
    """Chunks done at the newest intact checkpoint (``None``: there is no
    checkpoint); the ones after it are set aside, renamed ``damaged-<step>``
    (so their step numbers can be written again), with a warning naming
    what is wrong. Resuming restores this one.

    Raises:
      ConfigError: there are checkpoints but none is intact.
    """
    if self._intact is not None:
      return self._intact
    steps = sorted(self._manager.all_steps(), reverse=True)
    problems = []
    for step in steps:
      step_dir = os.path.join(self.directory, str(step))
      problem = damage(step_dir)
      if problem is None:
        self._intact = step
        break
      problems.append(f"checkpoint {step} ({problem})")
    if problems and self._intact is None:
      raise ConfigError(
        f"no intact checkpoint in {self.directory}: "
        + "; ".join(problems)
        + ". Start a new run, or restore the files from a backup."
      )
    for step in steps:
      if step > self._intact:
        os.replace(
          os.path.join(self.directory, str(step)), os.path.join(self.directory, f"damaged-{step}")
        )
    if problems:
      self._manager.reload()
      logger.warning(
        "%s damaged in %s: set aside as damaged-<step>; resuming from checkpoint %d",
        "; ".join(problems),
        self.directory,
        self._intact,
      )
    return self._intact

  def save(
    self,
    chunks_done: int,
    state: Any,
    history: list[metrics_lib.ChunkRecord],
    fingerprint: dict[str, Any],
    params: Any,
    include_state: bool = True,
    extra: Any = None,
  ) -> None:
    """Writes a checkpoint after ``chunks_done`` chunks (blocks until written).

    ``params``: the params of every seed, leading axis seeds (what evaluation
    loads). ``include_state=False`` writes the params and metrics only
    (multi-process runs, whose state is spread over the hosts): evaluable, not
    resumable. ``extra``: JSON the trainer keeps beside the state, of any
    shape (the host loop's env snapshot), given back as ``Restored.extra``.
    """
    ocp = self._ocp
    params = jax.device_get(params)
    meta = {
      "chunks_done": chunks_done,
      "fingerprint": fingerprint,
      "history": [metrics_lib.record_to_json(r) for r in history],
    }
    if extra is not None:
      meta["extra"] = extra
    items = dict(params=ocp.args.StandardSave(params))
    if include_state:
      # The device arrays go to orbax as they are: it stages a numpy tree
      # (what jax.device_get made) on the host twice while writing it, and a
      # device array at most once (its copy_to_host_async), which on a CPU
      # was two extra copies of the replay buffer at every checkpoint (issue 14).
      meta["state_layout"] = _describe_tree(state)
      items["state"] = ocp.args.StandardSave(state)
    items["meta"] = ocp.args.JsonSave(meta)
    self._manager.save(chunks_done, force=True, args=ocp.args.Composite(**items))
    self._manager.wait_until_finished()
    step_dir = os.path.join(self.directory, str(chunks_done))
    files = manifest(step_dir)
    tmp = os.path.join(step_dir, MANIFEST + ".tmp")
    with open(tmp, "w") as f:
      json.dump(files, f)
    os.replace(tmp, os.path.join(step_dir, MANIFEST))
    self._intact = chunks_done
    logger.info("checkpoint: %d chunks done -> %s", chunks_done, self.directory)

  def read_meta(self, step: int | None = None) -> dict[str, Any]:
    """The JSON part of a checkpoint (newest if ``step`` is None)."""
    step = self._require_step(step)
    return self._manager.restore(
      step, args=self._ocp.args.Composite(meta=self._ocp.args.JsonRestore())
    )["meta"]

  def check_fingerprint(
    self, fingerprint: Mapping[str, Any], step: int | None = None
  ) -> dict[str, Any]:
    """Refuses a checkpoint of another run; returns its JSON part.

    Raises:
      ConfigError: naming every setting that differs.
    """
    step = self._require_step(step)
    meta = self.read_meta(step)
    # A setting renamed since the checkpoint was written is compared under its new name.
    saved = config_lib.migrate(meta["fingerprint"], prefix="trainer.")
    saved = config_lib.migrate(saved, self.renamed, introduced=self.introduced)
    # An introduced key that a caller does not set has its old value on both sides.
    diffs = differences(saved, {**self.introduced, **fingerprint})
    if diffs:
      raise ConfigError(
        f"Checkpoint {self.directory} (step {step}) belongs to a different "
        f"run and cannot be continued: "
        + "; ".join(diffs)
        + ". Resume with the checkpoint's settings, or start a new run in "
        "another directory."
      )
    return meta

  def restore(
    self, like_state: Any, fingerprint: dict[str, Any], step: int | None = None
  ) -> Restored:
    """Restores the newest (or ``step``) checkpoint into host arrays shaped like ``like_state``.

    Raises:
      ValueError: if the checkpoint's fingerprint or state structure differs
        from this run's, naming what differs.
    """
    ocp = self._ocp
    step = self._require_step(step)
    meta = self.check_fingerprint(fingerprint, step)
    if "state_layout" not in meta:
      raise ConfigError(
        f"Checkpoint {self.directory} (step {step}) holds params only (it is "
        f"from a multi-process run): it can be evaluated, not resumed."
      )
    like = jax.tree.map(lambda x: np.zeros(np.shape(x), x.dtype), like_state)
    diffs = differences(meta["state_layout"], _describe_tree(like))
    if diffs:
      raise ConfigError(
        f"Checkpoint {self.directory} (step {step}) holds a differently shaped "
        f"training state (another network or agent?): " + "; ".join(diffs[:10])
      )
    restored = self._manager.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(like))
    )["state"]
    return Restored(
      state=restored,
      chunks_done=int(meta["chunks_done"]),
      history=[metrics_lib.record_from_json(h) for h in meta["history"]],
      extra=meta.get("extra"),
    )

  def restore_params(self, like_params: Any, step: int | None = None) -> Any:
    """The params (leading axis seeds) of the newest (or ``step``) checkpoint."""
    ocp = self._ocp
    step = self._require_step(step)
    like = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), like_params)
    return self._manager.restore(
      step, args=ocp.args.Composite(params=ocp.args.StandardRestore(like))
    )["params"]

  def _require_step(self, step: int | None) -> int:
    if step is None:
      step = self._intact if self._intact is not None else self.latest_step()
    if step is None:
      raise FileNotFoundError(
        f"No checkpoint in {self.directory}. Checkpoints are written every "
        f"{self.every_chunks} chunk(s) and at the end of a run; a run stopped "
        f"before its first one cannot be resumed."
      )
    return step

  def close(self) -> None:
    self._manager.close()
