"""Device wiring: the one place that introduces the device axis.

Array layout of everything a run holds, documented once::

    (devices, seeds per device, envs, ...)   e.g. TrainState.obs: (D, S_d, N, *obs_shape)

``pmap`` adds the device axis (named :data:`DEVICE_AXIS`); ``vmap`` adds the
seed axis inside it; the env axis is the loop's own (``loop.py``). The
devices share a run in one of two layouts (``AnakinConfig.parallel``):

* ``data``: every device holds all ``S_d = S`` seeds; the device axis is
  handed to ``agent.update``, which averages gradients over it with
  ``pmean``. Params are identical on every device (same init key, averaged
  gradients); envs, exploration and replay differ per device.
* ``seeds``: the ``S`` seeds are spread over the devices, ``S_d = S / D``
  each, and ``agent.update`` gets no axis: independent runs need no
  collective. Seed ``i`` lives on device ``i // S_d`` and starts exactly as
  it would alone on one device, so its result does not depend on where it ran.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from baselax.agents import base as agent_base
from baselax.anakin import loop
from baselax.anakin.config import AnakinConfig, Derived
from baselax.errors import ConfigError

#: The name of the device axis: the only axis name the trainer introduces.
DEVICE_AXIS = "device"


def local_num_devices(config: AnakinConfig) -> int:
  """Devices this process maps over: ``config.num_devices`` checked (``None`` = all).

  In a multi-process run every process maps over all its local devices.
  """
  available = jax.local_device_count()
  if config.num_devices is None:
    return available
  if config.num_devices > available:
    raise ConfigError(
        f"num_devices={config.num_devices} but only {available} local "
        f"{jax.default_backend()} device(s) exist: use --num-devices "
        f"{available} or fewer (none = all). On CPU, XLA_FLAGS="
        f"--xla_force_host_platform_device_count=N set before JAX starts gives N devices.")
  if jax.process_count() > 1 and config.num_devices != available:
    raise ConfigError(
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


class Program(NamedTuple):
  """A run's compiled pieces, mapped over ``(devices, seeds)``; see :func:`build`.

  Attributes:
    init: ``init(seed_keys, device_indices) -> TrainState``.
    chunk: ``chunk(state, first_step) -> (state, metrics)``: one chunk of
      ``derived.steps_per_chunk`` scan steps (and a greedy evaluation when
      built with ``evaluate=True``); donates ``state``. Every device returns
      the metrics of all devices, ``(D, S, ...)``.
    seed_keys: root keys, see :func:`seed_keys_for`: ``(num_seeds, 2)`` in
      the data layout, this process's ``(local_devices, S_d, 2)`` in the
      seeds layout.
    device_indices: ``(local_devices,)`` indices folded into env and
      exploration keys: the global device indices in the data layout, 0 in
      the seeds layout (a seed starts as it would on one device).
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

  def params_per_seed(self, params: Any) -> Any:
    """``(num_seeds, ...)`` params from the ``(D, S_d, ...)`` state layout."""
    if self.derived.layout == "data":
      return jax.tree.map(lambda x: x[0], params)  # equal on every device
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), params)

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
  data = derived.layout == "data"
  fns = loop.make_anakin(agent, env, config, derived,
                         axis_name=DEVICE_AXIS if data else None)
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
                  axis_name=DEVICE_AXIS, in_axes=(None if data else 0, 0),
                  devices=devices)
  chunk = jax.pmap(chunk_everywhere, axis_name=DEVICE_AXIS, in_axes=(0, None),
                   devices=devices, donate_argnums=0)
  first = jax.process_index() * local
  seed_keys = seed_keys_for(config)
  if data:
    device_indices = jnp.arange(first, first + local, dtype=jnp.int32)
  else:
    seed_keys = seed_keys.reshape(num_devices, derived.seeds_per_device, 2)
    seed_keys = seed_keys[first:first + local]
    device_indices = jnp.zeros((local,), jnp.int32)
  return Program(init=init, chunk=chunk, seed_keys=seed_keys,
                 device_indices=device_indices, derived=derived,
                 num_devices=num_devices, local_devices=local)
