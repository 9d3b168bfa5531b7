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
* ``groups``: both at once. The devices form ``G = D / k`` groups of ``k``
  consecutive devices (``devices_per_group``); the seeds are spread over the
  groups, ``S_d = S / G`` each, every device of a group holds all of its
  group's seeds, and ``agent.update`` averages over the group only (a
  :class:`~baselax.agents.base.DeviceGroups` axis, ``pmean`` with
  ``axis_index_groups``). ``data`` is one group of ``D``, ``seeds`` ``D``
  groups of one: the code below has only the general case.

A hyperparameter sweep (``sweep.py``) multiplies the runs: ``S`` above is
then every grid point x every seed (point-major), mapped the same way; each
run builds its point's agent from values it reads by its position.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from baselax.agents import base as agent_base
from baselax.anakin import loop
from baselax.anakin import sweep as sweep_lib
from baselax.anakin.config import AnakinConfig, Derived
from baselax.envs.gymnax_env import check_env
from baselax.errors import ConfigError
from baselax.training import lowering

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
      f"--xla_force_host_platform_device_count=N set before JAX starts gives N devices."
    )
  if jax.process_count() > 1 and config.num_devices != available:
    raise ConfigError(
      f"In a multi-process run every process maps over all of its devices: "
      f"num_devices must be None (or {available}), got {config.num_devices}."
    )
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
  return jnp.stack([jax.random.PRNGKey(config.seed + i) for i in range(config.num_seeds)])


class Program(NamedTuple):
  """A run's compiled pieces, mapped over ``(devices, seeds)``; see :func:`build`.

  Attributes:
    init: ``init(seed_keys, device_indices) -> TrainState``.
    chunk: ``chunk(state, first_step) -> (state, metrics)``: one chunk of
      ``derived.steps_per_chunk`` scan steps (and a greedy evaluation when
      built with ``evaluate=True``); donates ``state``. Every device returns
      the metrics of all devices, ``(D, S, ...)``.
    seed_keys: this process's root keys ``(local_devices, S_d, 2)`` (see
      :func:`seed_keys_for`): every device of a group holds its group's.
    device_indices: ``(local_devices,)`` indices folded into env and
      exploration keys: a device's index within its group (the global device
      index in the data layout, 0 in the seeds layout: a seed starts as it
      would on one device).
    derived: the loop sizes.
    num_devices: devices mapped over, in all processes.
    local_devices: devices mapped over by this process.
    compiler_options: what XLA compiles the chunk with
      (``baselax.training.lowering.compiler_options`` of the agent).
  """

  init: Callable
  chunk: Any  # jitted (it is lowered and compiled ahead of time on CPU)
  seed_keys: jax.Array
  device_indices: jax.Array
  derived: Derived
  num_devices: int
  local_devices: int
  compiler_options: Mapping[str, Any] = MappingProxyType({})

  def params_per_seed(self, params: Any) -> Any:
    """``(runs, ...)`` params from the ``(D, S_d, ...)`` state layout (a
    group's devices hold equal params: its first device's are taken)."""
    size = min(self.derived.seed_devices, self.local_devices)
    return jax.tree.map(
      lambda x: x.reshape(-1, size, *x.shape[1:])[:, 0].reshape(-1, *x.shape[2:]), params
    )

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

    def compile_chunk():
      with lowering.unrolled_threefry():  # same bits, far fewer kernels on CPU
        lowered = self.chunk.lower(abstract_state, jax.ShapeDtypeStruct((), jnp.int32))
      # CPU: the overlapping schedule, and the options the agent's loss asks for.
      return lowering.compile_chunk(lowered, self.compiler_options)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
      compiling = pool.submit(compile_chunk)
      state = jax.block_until_ready(self.init(self.seed_keys, self.device_indices))
      return state, compiling.result()


def device_axis(num_devices: int, group_size: int) -> Any:
  """What ``agent.update`` averages gradients over: ``None`` (groups of one
  device: independent runs), :data:`DEVICE_AXIS` (one group of all), or a
  :class:`~baselax.agents.base.DeviceGroups` of consecutive devices."""
  if group_size == 1:
    return None
  if group_size == num_devices:
    return DEVICE_AXIS
  return agent_base.DeviceGroups(
    DEVICE_AXIS, tuple(tuple(range(g, g + group_size)) for g in range(0, num_devices, group_size))
  )


def check_sweep(
  agent: agent_base.BaseAgent,
  env: Any,
  config: AnakinConfig,
  sweep: sweep_lib.Sweep,
  derived: Derived | None = None,
) -> None:
  """Refuses, before compiling, a swept setting the agent cannot take as an
  array (``sweep.check_sweepable``): one run's init and chunk are traced
  abstractly with the settings as traced scalars."""
  env = check_env(env)
  if derived is None:
    derived = config.derive(resolve_num_devices(config), sweep.num_points)

  def trace_one_run(values):  # outside pmap: no device axis to average over
    fns = loop.make_anakin(sweep.build(values), env, config, derived, axis_name=None)
    key = jax.random.PRNGKey(config.seed)  # traced abstractly: no number is drawn
    return loop.chunk_and_evaluate(fns, fns.init(key, jnp.int32(0)), jnp.int32(0))

  sweep_lib.check_sweepable(sweep, trace_one_run, type(agent).__name__)


def point_fns(
  agent: agent_base.BaseAgent,
  env: Any,
  config: AnakinConfig,
  derived: Derived,
  axis_name: str | None,
  sweep: sweep_lib.Sweep | None,
) -> tuple[Callable[[Any], loop.AnakinFns], Callable[[], dict[str, Any]]]:
  """``(fns_for(values), values_here())``: the loop's functions of a sweep
  point's values, and the values of this device's runs (``{}``: no sweep)."""
  if sweep is None:
    fns = loop.make_anakin(agent, env, config, derived, axis_name=axis_name)
    return (lambda values: fns), (lambda: {})

  def fns_for(values):
    # The point's agent, built while tracing from its (traced) values.
    return loop.make_anakin(sweep.build(values), env, config, derived, axis_name=axis_name)

  check_sweep(agent, env, config, sweep, derived)
  # {setting: (devices, runs per group)}; a device reads its row by its index
  # on the axis (a closed-over constant, so the program's signature is the
  # same with or without a sweep). Groups of `size` consecutive devices.
  size = derived.seed_devices
  groups = derived.num_devices // size
  run_values = {
    k: jnp.repeat(jnp.asarray(v).reshape(groups, -1), size, axis=0)
    for k, v in sweep.run_values(config.num_seeds).items()
  }

  def values_here():
    return {k: v[jax.lax.axis_index(DEVICE_AXIS)] for k, v in run_values.items()}

  return fns_for, values_here


def build(
  agent: agent_base.BaseAgent,
  env: Any,
  config: AnakinConfig,
  *,
  evaluate: bool = True,
  sweep: sweep_lib.Sweep | None = None,
) -> Program:
  """Maps the Anakin loop over runs (``vmap``) and devices (``pmap``).

  The device axis is introduced here, and only here. ``evaluate=False``
  leaves the greedy evaluation out of the chunk (``scripts/bench.py`` times
  training alone). With a ``sweep`` the runs are every grid point x every
  seed (point-major, see ``sweep.py``) and each run's agent is
  ``sweep.build`` of its point's values; ``agent`` is then only used for
  what all points share (it should be the first point's).
  """
  env = check_env(env)
  local = local_num_devices(config)
  num_devices = local * jax.process_count()
  num_points = sweep.num_points if sweep is not None else 1
  derived = config.derive(num_devices, num_points)
  # A single process maps over the devices it was given; a multi-process
  # pmap must name no devices: it then spans every device of every process.
  devices = jax.local_devices()[:local] if jax.process_count() == 1 else None
  # Every layout is groups of `size` consecutive devices (data: one group of
  # all; seeds: groups of one). A group holds its own runs, and each device
  # of a group holds all of them, with envs of its own.
  size = derived.seed_devices
  groups = num_devices // size
  axis_name = device_axis(num_devices, size)
  first = jax.process_index() * local

  def per_device(runs):
    """``(runs, ...)`` -> ``(local devices, runs per group, ...)``: a device gets its group's."""
    by_group = runs.reshape(groups, -1, *runs.shape[1:])
    return jnp.repeat(by_group, size, axis=0)[first : first + local]

  seed_keys = per_device(jnp.tile(seed_keys_for(config), (num_points, 1)))
  device_indices = jnp.arange(first, first + local, dtype=jnp.int32) % size

  fns_for, values_here = point_fns(agent, env, config, derived, axis_name, sweep)

  def init_runs(keys, device_index):
    return jax.vmap(lambda key, values: fns_for(values).init(key, device_index))(
      keys, values_here()
    )

  def chunk_everywhere(state, first_step):
    """A chunk whose metrics every device holds for all devices ``(D, ...)``.

    The all-gather lets each process read the whole run's env steps, returns
    and losses from its own first device: one small collective per chunk.
    """

    def one_run(run_state, values):
      fns = fns_for(values)
      if evaluate:
        return loop.chunk_and_evaluate(fns, run_state, first_step)
      return fns.run_chunk(run_state, first_step)

    state, metrics = jax.vmap(one_run)(state, values_here())
    return state, jax.lax.all_gather(metrics, DEVICE_AXIS)

  init = jax.pmap(init_runs, axis_name=DEVICE_AXIS, devices=devices)
  chunk = jax.pmap(
    chunk_everywhere, axis_name=DEVICE_AXIS, in_axes=(0, None), devices=devices, donate_argnums=0
  )
  return Program(
    init=init,
    chunk=chunk,
    seed_keys=seed_keys,
    device_indices=device_indices,
    derived=derived,
    num_devices=num_devices,
    local_devices=local,
    compiler_options=lowering.compiler_options(agent),
  )
