"""What a run's replay buffers take, settled before anything is compiled.

The bytes of one buffer come from the shapes of its state's arrays
(``jax.eval_shape``, nothing is allocated), times the buffers on a device
(``Derived.runs_per_device``, in both layouts: in ``data`` every device holds
one buffer per seed, in ``seeds`` one per seed it runs) times the local
devices; compared with the memory the devices have (an accelerator's
``memory_stats()["bytes_limit"]`` per device, or the host's available RAM,
``MemAvailable``, shared by all CPU devices). :meth:`MemoryPlan.check` refuses
a run whose buffers exceed :data:`USABLE_FRACTION` of it, naming the largest
``buffer_size`` that fits.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from baselax.errors import ConfigError
from baselax.replay.buffers import ReplayConfig, run_replay
from baselax.replay.codecs import ObsCodec, nbytes
from baselax.replay.records import example_record
from baselax.training.config import TrainingConfig

#: The share of the available memory the replay buffers may take: the rest is
#: for params, env states, XLA's temporaries and the compiler.
USABLE_FRACTION = 0.9


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
  """The replay memory of a run; see :func:`plan`.

  Attributes:
    buffer_kind: ``item``, ``prioritized item``, ``n-step`` or
      ``prioritized n-step``.
    obs_storage: the resolved storage (``float32``, ``uint8``, ``bool``,
      ``native``).
    obs_bytes: one observation as the env emits it.
    stored_obs_bytes: one observation as the buffer stores it.
    capacity: transitions one buffer holds.
    buffer_bytes: one buffer, summed over its state's arrays.
    buffers_per_device: buffers on one device (``Derived.runs_per_device``).
    local_devices: devices this process maps over.
    memory: ``"device"`` (each accelerator has its own) or ``"host"`` (all
      CPU devices share the host's RAM).
    available_bytes: what the buffers are checked against: per device for
      ``"device"``, for all devices for ``"host"``; None if unknown.
    largest_buffer_size: when the buffers do not fit, the largest
      ``buffer_size`` that does (0 if none does); else None.
  """

  buffer_kind: str
  obs_storage: str
  obs_bytes: int
  stored_obs_bytes: int
  capacity: int
  buffer_bytes: int
  buffers_per_device: int
  local_devices: int
  memory: str
  available_bytes: int | None
  largest_buffer_size: int | None = None

  @property
  def bytes_per_transition(self) -> float:
    return self.buffer_bytes / self.capacity

  @property
  def device_bytes(self) -> int:
    """The replay buffers on one device."""
    return self.buffer_bytes * self.buffers_per_device

  @property
  def total_bytes(self) -> int:
    """The replay buffers on all this process's devices."""
    return self.device_bytes * self.local_devices

  @property
  def required_bytes(self) -> int:
    """What must fit in :attr:`available_bytes`."""
    return self.total_bytes if self.memory == "host" else self.device_bytes

  @property
  def fits(self) -> bool:
    return (
      self.available_bytes is None or self.required_bytes <= USABLE_FRACTION * self.available_bytes
    )

  def line(self) -> str:
    """The start-up log line."""
    kind = "available RAM" if self.memory == "host" else "per device"
    where = "" if self.available_bytes is None else f"; {_size(self.available_bytes)} {kind}"
    return (
      f"replay memory: {_size(self.total_bytes)} = {self.buffers_per_device} "
      f"buffer(s) per device x {self.local_devices} device(s) x "
      f"{self.capacity:,} transitions x {self.bytes_per_transition:,.1f} B "
      f"({self.buffer_kind} buffer, observations stored as {self.obs_storage}: "
      f"{self.stored_obs_bytes:,} B of {self.obs_bytes:,}){where}"
    )

  def to_json(self) -> dict[str, Any]:
    """The plan for ``config.json`` (its fields and the derived totals)."""
    out = dataclasses.asdict(self)
    out.update(
      bytes_per_transition=self.bytes_per_transition,
      device_bytes=self.device_bytes,
      total_bytes=self.total_bytes,
    )
    return out

  def check(self) -> None:
    """Refuses buffers that cannot fit.

    Raises:
      ConfigError: naming the sizes and the largest ``buffer_size`` that fits.
    """
    if self.fits:
      return
    where = (
      f"the {_size(self.available_bytes)} of RAM available"
      if self.memory == "host"
      else f"a device's {_size(self.available_bytes)} of free memory"
    )
    fix = (
      f"the largest buffer_size that fits is {self.largest_buffer_size:,}"
      if self.largest_buffer_size
      else "no buffer_size fits"
    )
    raise ConfigError(
      f"the replay buffers (buffer_size {self.capacity:,}) need "
      f"{_size(self.required_bytes)} ({self.buffers_per_device} buffer(s) per device"
      f"{f' x {self.local_devices} device(s)' if self.memory == 'host' else ''} x "
      f"{self.capacity:,} transitions x {self.bytes_per_transition:,.1f} B) but only "
      f"{USABLE_FRACTION:.0%} of {where} may hold them: {fix}. Lower buffer_size "
      f"or num_seeds, or store observations compactly (obs_storage)."
    )


def _size(n: float | None) -> str:
  if n is None:
    return "?"
  for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
    if n >= scale:
      return f"{n / scale:,.2f} {unit}"
  return f"{int(n)} B"


def available_memory(device: Any = None) -> tuple[str, int | None]:
  """``(kind, bytes)``: an accelerator's free allocator memory, else the host's.

  ``("device", bytes_limit - bytes_in_use)`` when ``device.memory_stats()``
  reports a limit (GPU, TPU); else ``("host", MemAvailable)`` from
  ``/proc/meminfo`` (None where it cannot be read).
  """
  device = device if device is not None else jax.local_devices()[0]
  try:
    stats = device.memory_stats()
  except Exception:  # some backends raise instead of returning None
    stats = None
  if stats and stats.get("bytes_limit"):
    return "device", int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return "host", int(line.split()[1]) * 1024
  except OSError:
    pass
  return "host", None


def buffer_kind(config: TrainingConfig) -> str:
  return ReplayConfig.of(config).kind


def replay_bytes(
  agent: Any, env: Any, config: TrainingConfig, example: Any = None
) -> tuple[int, int, ObsCodec]:
  """``(bytes, capacity, codec)`` of one replay buffer of ``config``, from its shapes.

  ``example``: the abstract step record (:func:`~baselax.replay.records.example_record`),
  if known.
  """
  # (The discount changes no size: any will do for n-step.)
  buffer = run_replay(agent, env, config, 0.99, example)
  return nbytes(jax.eval_shape(buffer.init)), buffer.capacity, buffer.codec


def plan(
  agent: Any,
  env: Any,
  config: TrainingConfig,
  derived: Any,
  *,
  local_devices: int,
  available: tuple[str, int | None] | None = None,
) -> MemoryPlan:
  """The :class:`MemoryPlan` of a run (nothing is allocated or compiled).

  Args:
    agent, env, config: the run.
    derived: its :class:`~baselax.training.Derived` sizes; the buffers on
      a device are ``derived.runs_per_device``, its runs.
    local_devices: devices this process maps over.
    available: ``(kind, bytes)`` to check against (default
      :func:`available_memory` of the first local device).
  """
  kind, free = available if available is not None else available_memory()
  nbytes, capacity, codec = replay_bytes(agent, env, config)
  out = MemoryPlan(
    buffer_kind=buffer_kind(config),
    obs_storage=codec.name,
    obs_bytes=codec.obs_bytes,
    stored_obs_bytes=codec.stored_bytes,
    capacity=capacity,
    buffer_bytes=nbytes,
    buffers_per_device=derived.runs_per_device,
    local_devices=local_devices,
    memory=kind,
    available_bytes=free,
  )
  if out.fits:
    return out
  return dataclasses.replace(out, largest_buffer_size=_largest_fitting(agent, env, config, out))


def _largest_fitting(agent: Any, env: Any, config: TrainingConfig, out: MemoryPlan) -> int:
  """The largest ``buffer_size`` (a multiple of ``num_envs``) whose buffers fit, or 0."""
  assert out.available_bytes is not None  # (an unknown size always fits)
  example = example_record(agent, env)
  per_buffer = (
    USABLE_FRACTION
    * out.available_bytes
    / (out.buffers_per_device * (out.local_devices if out.memory == "host" else 1))
  )

  def fits(size: int) -> bool:
    try:
      smaller = dataclasses.replace(config, buffer_size=size)
    except ConfigError:  # below what the other settings need
      return False
    return replay_bytes(agent, env, smaller, example)[0] <= per_buffer

  step = config.num_envs
  low, high = 0, config.buffer_size // step  # in units of num_envs; high does not fit
  while high - low > 1:
    mid = (low + high) // 2
    if fits(mid * step):
      low = mid
    else:
      high = mid
  return low * step if low and fits(low * step) else 0
