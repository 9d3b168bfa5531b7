"""``train``: the runner users call. The one place that introduces the device axis.

Array layout of everything the runner holds, documented once::

    (devices, seeds, envs, ...)      e.g. TrainState.obs: (D, S, N, *obs_shape)

``pmap`` adds the device axis (named :data:`DEVICE_AXIS`, handed to
``agent.update`` so gradients are averaged with ``pmean``); ``vmap`` adds the
seed axis inside it; the env axis is the loop's own (``loop.py``). Params are
identical on every device (same init key, averaged gradients); envs,
exploration and replay differ per device. Training runs as compiled chunks of
``eval_every`` env steps, each followed by a greedy evaluation on device, with
the host only reading the chunk's metrics in between.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import signal
import threading
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from baselax.agents import base as agent_base
from baselax.anakin import checkpoint as checkpoint_lib
from baselax.anakin import distributed
from baselax.anakin import loop
from baselax.anakin.config import AnakinConfig, Derived

logger = logging.getLogger("baselax.anakin")

#: The name of the device axis: the only axis name the trainer introduces.
DEVICE_AXIS = "device"

ChunkCallback = Callable[[Dict[str, Any]], None]


@dataclasses.dataclass
class TrainResult:
  """What :func:`train` returns.

  Attributes:
    params: the agent's params, leading axis = seed (taken from device 0; all
      devices hold the same params).
    state: the final ``TrainState`` of every (device, seed), layout
      ``(devices, seeds, ...)``.
    metrics: per chunk (leading axis = chunk): ``env_steps`` (per seed, all
      devices), ``wall_time`` (s since the start, after compilation), ``sps``
      (env steps per second over all seeds in that chunk), ``train_return``
      ``(chunks, seeds)`` mean return of training episodes finished in the
      chunk (NaN if none), ``eval_return`` ``(chunks, seeds)`` mean greedy
      return, ``eval_returns`` ``(chunks, seeds, episodes)``, one
      ``(chunks, seeds)`` entry per scalar field of the agent's
      ``OptimOutput`` (mean over the chunk's updates, NaN before learning),
      and ``updates``; plus scalars ``compile_time`` and ``total_time``.
    config: the config of the run.
    derived: the loop sizes derived from it.
    stopped_early: the run stopped before its last chunk (``on_chunk``
      returned True, or Ctrl-C); its checkpoint can be resumed.
  """
  params: Any
  state: loop.TrainState
  metrics: Dict[str, Any]
  config: AnakinConfig
  derived: Derived
  stopped_early: bool = False


def local_num_devices(config: AnakinConfig) -> int:
  """Devices this process maps over: ``config.num_devices`` checked (``None`` = all).

  In a multi-process run every process maps over all its local devices.
  """
  available = jax.local_device_count()
  if config.num_devices is None:
    return available
  if config.num_devices > available:
    raise ValueError(
        f"num_devices={config.num_devices} but only {available} local "
        f"{jax.default_backend()} device(s) exist. Use num_devices<={available} "
        f"(None = all). On CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
        f"set before JAX starts gives N devices.")
  if jax.process_count() > 1 and config.num_devices != available:
    raise ValueError(
        f"In a multi-process run every process maps over all of its devices: "
        f"num_devices must be None (or {available}), got {config.num_devices}.")
  return config.num_devices


def resolve_num_devices(config: AnakinConfig) -> int:
  """Devices in the run, over all processes (``local_num_devices`` x processes).

  Env-step counts and the sizes in :class:`Derived` are over all of them.
  """
  return local_num_devices(config) * jax.process_count()


def seed_keys_for(config: AnakinConfig) -> jax.Array:
  """One root key per seed: ``PRNGKey(config.seed + i)`` for seed ``i``.

  So seed ``i`` of a many-seed run is the same run as ``seed=config.seed + i``
  alone (up to floating-point reassociation under vmap).
  """
  return jnp.stack([jax.random.PRNGKey(config.seed + i)
                    for i in range(config.num_seeds)])


def _summarise_chunk(raw: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """Host-side reduction of one chunk's ``(devices, seeds, ...)`` metrics."""
  out = {}
  # Sums over the chunk are finite unless some step was not: zeros are summed
  # before learning starts, so NaN here means a NaN loss or scalar.
  out["nonfinite"] = [name for name, value in raw.items()
                      if name not in ("params_finite",)
                      and not np.all(np.isfinite(value))]
  if not np.all(raw.get("params_finite", 1.0)):
    out["nonfinite"].append("params")
  with np.errstate(invalid="ignore", divide="ignore"):
    episodes = raw["episodes"].sum(0)
    out["train_return"] = raw["episode_return_sum"].sum(0) / episodes
    out["train_episodes"] = episodes
    updates = raw["updates"][0]  # identical on every device
    for name, value in raw.items():
      if name in ("episodes", "episode_return_sum", "updates", "eval_returns",
                  "params_finite"):
        continue
      # Reported scalars are pmean-ed by the agent; the device mean also covers
      # agents that report per-device values.
      out[name] = value.mean(0) / updates
    out["updates"] = updates
  returns = np.moveaxis(raw["eval_returns"], 0, 1)  # (seeds, devices, E)
  returns = returns.reshape(returns.shape[0], -1)
  out["eval_returns"] = returns
  out["eval_return"] = returns.mean(-1)
  return out


def stack_history(history: List[Dict[str, Any]]) -> Dict[str, Any]:
  """Per-chunk summaries -> metrics with a leading chunk axis (NaN where absent)."""
  metrics = {}
  for k in sorted(set().union(*history)):
    shape = np.shape(next(h[k] for h in history if k in h))
    metrics[k] = np.stack([np.asarray(h[k]) if k in h else np.full(shape, np.nan)
                           for h in history])
  return metrics


class Program(NamedTuple):
  """A run's compiled pieces, mapped over ``(devices, seeds)``; see :func:`build`.

  Attributes:
    init: ``init(seed_keys, device_indices) -> TrainState``.
    chunk: ``chunk(state, first_step) -> (state, metrics)``: one chunk of
      ``derived.steps_per_chunk`` scan steps (and a greedy evaluation when
      built with ``evaluate=True``); donates ``state``.
    seed_keys: ``(num_seeds, 2)`` root keys, see :func:`seed_keys_for`.
    device_indices: ``(local_devices,)`` global indices of this process's
      devices (env and exploration keys are folded with them).
    derived: the loop sizes.
    num_devices: devices mapped over, in all processes.
    local_devices: devices mapped over by this process.
  """
  init: Callable
  chunk: Callable
  seed_keys: jax.Array
  device_indices: jax.Array
  derived: Derived
  num_devices: int
  local_devices: int

  def start(self):
    """Builds the initial state and compiles ``chunk``; returns ``(state, compiled_chunk)``.

    XLA compiles with the GIL released, so the chunk is compiled on a second
    thread, from the abstract state, while the initial state is built.
    """
    if jax.process_count() > 1:
      # A multi-process pmap's ahead-of-time executable wants global arrays;
      # called as a function it takes this process's local ones and compiles
      # on the first call (so the first chunk's time includes compilation).
      return jax.block_until_ready(self.init(self.seed_keys, self.device_indices)), self.chunk
    abstract_state = jax.eval_shape(self.init, self.seed_keys, self.device_indices)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
      compiling = pool.submit(
          lambda: self.chunk.lower(abstract_state,
                                   jax.ShapeDtypeStruct((), jnp.int32)).compile())
      state = jax.block_until_ready(self.init(self.seed_keys, self.device_indices))
      return state, compiling.result()


def build(agent: agent_base.BaseAgent, env: Any, config: AnakinConfig,
          *, evaluate: bool = True) -> Program:
  """Maps the Anakin loop over seeds (``vmap``) and devices (``pmap``).

  The device axis is introduced here, and only here. ``evaluate=False``
  leaves the greedy evaluation out of the chunk (``scripts/bench.py`` times
  training alone).
  """
  env = loop.check_env(env)
  local = local_num_devices(config)
  num_devices = local * jax.process_count()
  derived = config.derive(num_devices)
  # A single process maps over the devices it was given; a multi-process
  # pmap must name no devices: it then spans every device of every process.
  devices = jax.local_devices()[:local] if jax.process_count() == 1 else None
  fns = loop.make_anakin(agent, env, config, derived, axis_name=DEVICE_AXIS)
  chunk_fn = ((lambda s, start: loop.chunk_and_evaluate(fns, s, start))
              if evaluate else fns.run_chunk)

  def chunk_everywhere(state, first_step):
    """A chunk whose metrics every device holds for all devices ``(D, ...)``.

    The all-gather lets each process read the whole run's env steps, returns
    and losses from its own first device: one small collective per chunk.
    """
    state, metrics = jax.vmap(chunk_fn, in_axes=(0, None))(state, first_step)
    return state, jax.lax.all_gather(metrics, DEVICE_AXIS)

  init = jax.pmap(jax.vmap(fns.init, in_axes=(0, None)),
                  axis_name=DEVICE_AXIS, in_axes=(None, 0), devices=devices)
  chunk = jax.pmap(chunk_everywhere, axis_name=DEVICE_AXIS, in_axes=(0, None),
                   devices=devices, donate_argnums=0)
  first = jax.process_index() * local
  return Program(init=init, chunk=chunk, seed_keys=seed_keys_for(config),
                 device_indices=jnp.arange(first, first + local, dtype=jnp.int32),
                 derived=derived, num_devices=num_devices, local_devices=local)


class NonFiniteError(FloatingPointError):
  """Training produced a NaN/inf loss or NaN/inf params (see :func:`train`)."""


class _StopRequests:
  """Turns Ctrl-C (SIGINT) into a stop request the runner sees after a chunk.

  A compiled chunk cannot be interrupted half-way without losing its donated
  state, so the first Ctrl-C only asks to stop; a second one interrupts at once.
  """

  def __init__(self, enabled: bool):
    self.requested = False
    self._enabled = enabled and threading.current_thread() is threading.main_thread()
    self._previous = None

  def __enter__(self):
    if self._enabled:
      self._previous = signal.signal(signal.SIGINT, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    if self.requested:
      raise KeyboardInterrupt
    self.requested = True
    logger.warning("Ctrl-C: stopping after this chunk and writing a checkpoint "
                   "(Ctrl-C again to abort without one).")

  def __exit__(self, *exc):
    if self._enabled:
      signal.signal(signal.SIGINT, self._previous)
    return False


def _check_finite(bad: List[str], c: int, derived: Derived,
                  checkpointer: Optional[checkpoint_lib.Checkpointer]) -> None:
  """The non-finite guard: raises :class:`NonFiniteError` naming chunk ``c``.

  ``bad`` names the non-finite quantities of the chunk (empty: all is well).
  """
  if not bad:
    return
  last = checkpointer.latest_step() if checkpointer is not None else None
  kept = (f"The last good checkpoint ({last} chunks, "
          f"{last * derived.env_steps_per_chunk:,} env steps) is kept in "
          f"{checkpointer.directory}." if last is not None else
          "No checkpoint was written before it.")
  raise NonFiniteError(
      f"Non-finite {', '.join(bad)} in chunk {c} (env steps "
      f"{c * derived.env_steps_per_chunk:,} to "
      f"{(c + 1) * derived.env_steps_per_chunk:,}); training stopped. {kept} "
      f"Lower the learning rate, clip gradients or check the rewards.")


def train(agent: agent_base.BaseAgent, env: Any, config: AnakinConfig,
          *, on_chunk: Optional[ChunkCallback] = None,
          checkpointer: Optional[checkpoint_lib.Checkpointer] = None,
          resume: bool = False) -> TrainResult:
  """Trains ``agent`` on ``env`` with the Anakin architecture.

  Args:
    agent: any ``BaseAgent`` (e.g. ``baselax.agents.DQN``).
    env: a ``baselax.envs.GymnaxEnv`` (the trainer uses its functional core;
      ``config.num_envs`` sets the number of envs per device).
    config: the run's :class:`AnakinConfig`.
    on_chunk: called after every chunk with a dict of that chunk's summary
      (``chunk``, ``env_steps``, ``sps``, ``train_return``, ``eval_return``,
      losses, ...). Returning ``True`` stops the run after that chunk (with a
      checkpoint, if there is a checkpointer). By default each chunk is logged
      at INFO level.
    checkpointer: writes the whole training state every
      ``checkpointer.every_chunks`` chunks, at the end, on a stop request and
      on Ctrl-C (which then stops the run cleanly after the current chunk).
    resume: continue from the checkpointer's newest checkpoint (refused if it
      is from another env, agent or config). The continuation is exact: the
      final params equal those of an uninterrupted run, bit for bit on CPU.

  Returns:
    A :class:`TrainResult` (``stopped_early`` tells a requested stop or
    Ctrl-C from a finished run).

  Raises:
    NonFiniteError: a chunk produced a NaN/inf loss or params; the message
      names the chunk, and the last good checkpoint is kept.
  """
  if resume and checkpointer is None:
    raise ValueError("resume=True needs a checkpointer to resume from.")
  multi_process = jax.process_count() > 1
  if resume and multi_process:
    raise ValueError(
        "Resuming a multi-process run is not supported: its replay buffers and "
        "env states live on every host, and checkpoints of multi-process runs "
        "hold the params only (enough for experiments/evaluate.py).")
  distributed.check_same_everywhere(
      "trainer configs or agents", checkpoint_lib.run_identity(config, agent, env))
  program = build(agent, env, config)
  derived, num_devices = program.derived, program.num_devices
  fingerprint = (checkpointer.fingerprint(config, agent, env, num_devices)
                 if checkpointer is not None else None)
  t_start = time.perf_counter()
  state, compiled = program.start()
  history: List[Dict[str, Any]] = []
  first_chunk = 0
  if resume:
    restored = checkpointer.restore(state, fingerprint)
    state = jax.tree.map(lambda like, x: jax.device_put(x, like.sharding),
                         state, restored.state)
    first_chunk, history = restored.chunks_done, list(restored.history)
    logger.info("resumed from %s at chunk %d of %d", checkpointer.directory,
                first_chunk, derived.num_chunks)
  compile_time = time.perf_counter() - t_start
  logger.info("compiled in %.1fs: %d chunks of %d env steps per seed on %d "
              "device(s), %d seed(s)", compile_time, derived.num_chunks,
              derived.env_steps_per_chunk, num_devices, config.num_seeds)

  def save(chunks_done):
    if checkpointer is not None:
      checkpointer.save(chunks_done, state, history, fingerprint,
                        include_state=not multi_process)

  stopped_early = False
  t_train = time.perf_counter()
  wall_offset = history[-1]["wall_time"] if history else 0.0
  # In a multi-process run every process must stop after the same chunk, so
  # every process turns Ctrl-C into a request (srun signals them all).
  with _StopRequests(enabled=checkpointer is not None or multi_process) as stop:
    for c in range(first_chunk, derived.num_chunks):
      t0 = time.perf_counter()
      state, raw = compiled(state, jnp.int32(c * derived.steps_per_chunk))
      # Every device holds all devices' metrics: read this process's first.
      # (Blocks until the chunk is done.)
      raw = jax.tree.map(lambda x: np.asarray(x.addressable_data(0))[0], raw)
      elapsed = time.perf_counter() - t0
      summary = _summarise_chunk(raw)
      summary.update(
          chunk=c,
          env_steps=(c + 1) * derived.env_steps_per_chunk,
          wall_time=wall_offset + time.perf_counter() - t_train,
          sps=derived.env_steps_per_chunk * config.num_seeds / elapsed)
      nonfinite = summary.pop("nonfinite")
      history.append(summary)
      if on_chunk is not None:
        stop.requested |= bool(on_chunk(summary))
      else:
        logger.info("env steps %d | sps %.0f | train return %s | eval return %s",
                    summary["env_steps"], summary["sps"],
                    np.round(summary["train_return"], 1),
                    np.round(summary["eval_return"], 1))
      _check_finite(nonfinite, c, derived, checkpointer)
      done = c + 1
      # Every process must take the same decision, or the others would wait
      # in the next chunk's collectives for ever.
      stopping = distributed.any_process(stop.requested)
      if done == derived.num_chunks or stopping:
        save(done)
        stopped_early = done < derived.num_chunks
        break
      if checkpointer is not None and done % checkpointer.every_chunks == 0:
        save(done)
  total_time = time.perf_counter() - t_start

  metrics = stack_history(history)
  metrics["compile_time"] = compile_time
  metrics["total_time"] = total_time
  params = jax.tree.map(lambda x: x[0], state.params)
  return TrainResult(params=params, state=state, metrics=metrics,
                     config=config, derived=derived, stopped_early=stopped_early)

