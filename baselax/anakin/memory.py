"""Replay memory: how observations are stored, and what a run's buffers take.

Two pieces, both settled before anything is compiled:

* **Observation storage** (``AnakinConfig.obs_storage``). The replay buffer
  stores each observation once (``replay.py``), encoded by an
  :class:`ObsCodec` and decoded before the network sees it:

  ===========  ===============================================================
  ``float32``  float32 (the env's own dtype for every gymnax env)
  ``uint8``    one byte per value: integer values in [0, 255]
  ``bool``     0/1 values packed 8 per byte (``jnp.packbits``)
  ``auto``     the smallest of ``bool``, ``uint8`` that is exact, else the
               env's own dtype
  ===========  ===============================================================

  A round trip is exact or refused: a compact storage needs a proof that
  every observation is an integer in its range. The range comes from the
  env's gymnasium ``observation_space`` (``Box`` low/high/dtype); integer and
  bool dtypes are integers by type. A float ``Box`` (MinAtar declares
  ``Box(0, 1, float32)``) is proven integer-valued by tracing the env's reset
  and step: :func:`traced_integer_range` follows each observation back
  through the jaxpr to casts from bool or integer arrays (MinAtar builds its
  channels as bools, then casts), and anything else (arithmetic on floats,
  an appended float action mask, ...) leaves it unproven, so it stays float.

* **The memory plan** (:func:`plan`): the bytes of one buffer, from the
  shapes of its state's arrays (``jax.eval_shape``, nothing is allocated),
  times the buffers on a device (``Derived.seeds_per_device``, in both
  layouts: in ``data`` every device holds one buffer per seed, in ``seeds``
  one per seed it runs) times the local devices; compared with the memory
  the devices have (an accelerator's ``memory_stats()["bytes_limit"]`` per
  device, or the host's available RAM, ``MemAvailable``, shared by all CPU
  devices). :meth:`MemoryPlan.check` refuses a run whose buffers exceed
  :data:`USABLE_FRACTION` of it, naming the largest ``buffer_size`` that fits.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from baselax.anakin.config import OBS_STORAGES as STORAGES
from baselax.anakin.config import AnakinConfig
from baselax.errors import ConfigError

#: The share of the available memory the replay buffers may take: the rest is
#: for params, env states, XLA's temporaries and the compiler.
USABLE_FRACTION = 0.9

#: Largest integer a float32 holds exactly (2^24).
_FLOAT32_EXACT = float(2 ** 24)

Range = Optional[Tuple[float, float]]


# --- observation storage ------------------------------------------------------------

class ObsCodec(NamedTuple):
  """How the replay stores one observation; see the module doc.

  Attributes:
    name: ``"float32"``, ``"uint8"``, ``"bool"`` or ``"native"`` (the env's
      own dtype, stored as it comes).
    encode: ``(..., *obs_shape) obs_dtype -> (..., *stored_shape) stored_dtype``.
    decode: the inverse (exact on every observation the env can emit).
    obs: the observation's ``jax.ShapeDtypeStruct`` (no batch axis).
    stored: the stored ``jax.ShapeDtypeStruct`` (no batch axis).
  """
  name: str
  encode: Callable[[Any], Any]
  decode: Callable[[Any], Any]
  obs: Any
  stored: Any

  @property
  def obs_bytes(self) -> int:
    return _nbytes(self.obs)

  @property
  def stored_bytes(self) -> int:
    return _nbytes(self.stored)


def _nbytes(tree: Any) -> int:
  return int(sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize
                 for x in jax.tree.leaves(tree)))


def _lead(x: Any, ndim: int) -> Tuple[int, ...]:
  """The leading (batch) axes of ``x`` in front of a ``ndim``-dimensional item."""
  return tuple(x.shape[:x.ndim - ndim])


def native_codec(obs: Any) -> ObsCodec:
  """Stores observations as they come (any pytree); named by the dtype of an array."""
  identity = lambda x: x  # noqa: E731
  name = np.dtype(obs.dtype).name if isinstance(obs, jax.ShapeDtypeStruct) else "native"
  return ObsCodec(name, identity, identity, obs, obs)


def cast_codec(obs: jax.ShapeDtypeStruct, dtype: Any, name: str) -> ObsCodec:
  """Stores each value cast to ``dtype`` (exact when every value fits it)."""
  dtype = np.dtype(dtype)
  return ObsCodec(name, lambda x: x.astype(dtype), lambda x: x.astype(obs.dtype), obs,
                  jax.ShapeDtypeStruct(obs.shape, dtype))


def bits_codec(obs: jax.ShapeDtypeStruct) -> ObsCodec:
  """Stores 0/1 values as bits, 8 per byte: ``(*shape) -> (ceil(size / 8),) uint8``."""
  size = math.prod(obs.shape)

  def encode(x):
    flat = x.reshape(*_lead(x, len(obs.shape)), size)
    return jnp.packbits(flat.astype(jnp.uint8), axis=-1)  # any nonzero is 1: values are 0/1

  def decode(packed):
    flat = jnp.unpackbits(packed, axis=-1, count=size)
    return flat.reshape(*packed.shape[:-1], *obs.shape).astype(obs.dtype)

  return ObsCodec("bool", encode, decode, obs,
                  jax.ShapeDtypeStruct((-(-size // 8),), np.uint8))


def observation_spec(env: Any) -> Any:
  """``jax.ShapeDtypeStruct`` (pytree) of one observation as the trainer gets it."""
  obs = jax.eval_shape(lambda key: env.functional_reset(key, 1)[0],
                       jax.ShapeDtypeStruct((2,), jnp.uint32))
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype), obs)


def space_range(space: Any) -> Tuple[bool, Range]:
  """``(integral, (low, high))`` a gymnasium ``Box`` promises for every value.

  Integer and bool dtypes are integral by type; the range is the Box's
  finite bounds (clipped to the dtype's), ``None`` if unbounded.
  """
  if not isinstance(space, gymnasium.spaces.Box):
    return False, None
  dtype = np.dtype(space.dtype)
  integral = dtype == np.bool_ or np.issubdtype(dtype, np.integer)
  low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
  bounds = (float(low.min()), float(high.max())) if low.size else None
  if bounds is not None and not np.all(np.isfinite(bounds)):
    bounds = None
  typed = _dtype_range(dtype)
  if typed is not None:
    bounds = typed if bounds is None else _intersect(bounds, typed)
  return integral, bounds


def proven_range(env: Any) -> Range:
  """The range of the env's observation values if they are proven integers, else None.

  Integers by the space's dtype, or by tracing (:func:`traced_integer_range`);
  bounded by the space and, when traced, by what the trace proves.
  """
  space = getattr(env, "single_observation_space", None)
  integral, bounds = space_range(space)
  if not isinstance(space, gymnasium.spaces.Box):
    return None
  if integral:
    return bounds
  traced = _cached_trace(env)
  if traced is None:
    return None
  return traced if bounds is None else _intersect(traced, bounds)


def obs_codec(storage: str, env: Any) -> ObsCodec:
  """The :class:`ObsCodec` of ``AnakinConfig.obs_storage`` for ``env``.

  Raises:
    ConfigError: a storage that could not hold every observation exactly,
      naming the space and the storages that would.
  """
  if storage not in STORAGES:
    raise ConfigError(f"obs_storage must be one of {', '.join(STORAGES)}, got {storage!r}.")
  obs = observation_spec(env)
  array = isinstance(obs, jax.ShapeDtypeStruct)
  dtype = np.dtype(obs.dtype) if array else None
  if storage == "float32" and array and dtype == np.float32:
    return native_codec(obs)
  if storage == "auto" and not array:
    return native_codec(obs)
  values = proven_range(env) if array else None
  if storage == "auto":
    if _within(values, 0, 1):
      return bits_codec(obs)
    if _within(values, 0, 255) and dtype.itemsize > 1:
      return cast_codec(obs, np.uint8, "uint8")
    return native_codec(obs)
  exact = array and {
      "float32": lambda: (dtype.kind == "f" and dtype.itemsize <= 4) or _within(
          values, -_FLOAT32_EXACT, _FLOAT32_EXACT),
      "uint8": lambda: _within(values, 0, 255),
      "bool": lambda: _within(values, 0, 1),
  }[storage]()
  if not exact:
    space = getattr(env, "single_observation_space", obs)
    proven = ("not proven to be integers" if values is None
              else f"integers in [{values[0]:g}, {values[1]:g}]")
    raise ConfigError(
        f"obs_storage={storage} cannot store the observations of {_env_name(env)} "
        f"exactly: {space} holds values {proven}. Use obs_storage=auto (the "
        f"smallest exact storage) or float32.")
  if storage == "bool":
    return bits_codec(obs)
  return cast_codec(obs, {"float32": np.float32, "uint8": np.uint8}[storage], storage)


def _env_name(env: Any) -> str:
  return str(getattr(getattr(env, "env", None), "name", type(env).__name__))


def _within(values: Range, low: float, high: float) -> bool:
  return values is not None and low <= values[0] and values[1] <= high


def _intersect(a: Tuple[float, float], b: Tuple[float, float]) -> Tuple[float, float]:
  return (max(a[0], b[0]), min(a[1], b[1]))


def _union(ranges) -> Range:
  ranges = list(ranges)
  if not ranges or any(r is None for r in ranges):
    return None
  return (min(r[0] for r in ranges), max(r[1] for r in ranges))


def _dtype_range(dtype: Any) -> Range:
  dtype = np.dtype(dtype)
  if dtype == np.bool_:
    return (0.0, 1.0)
  if np.issubdtype(dtype, np.integer):
    info = np.iinfo(dtype)
    return (float(info.min), float(info.max))
  return None


# --- the integer proof: a backward walk over the env's jaxpr ------------------------

#: Primitives whose output values are some of their operands' values (by
#: position; ``None``: all operands).
_PASS_THROUGH = {
    "reshape": (0,), "broadcast_in_dim": (0,), "squeeze": (0,), "expand_dims": (0,),
    "transpose": (0,), "rev": (0,), "copy": (0,), "copy_p": (0,), "slice": (0,),
    "dynamic_slice": (0,), "gather": (0,), "reduce_max": (0,), "reduce_min": (0,),
    "convert_element_type": (0,), "reduce_precision": (0,), "stop_gradient": (0,),
    "optimization_barrier": None,
    "dynamic_update_slice": (0, 1), "pad": (0, 1), "scatter": (0, 2),
    "scatter-max": (0, 2), "scatter-min": (0, 2), "scatter_max": (0, 2), "scatter_min": (0, 2),
    "concatenate": None, "max": None, "min": None, "clamp": None,
}
#: Call-like primitives and the parameter holding the called jaxpr.
_CALLS = ("jaxpr", "call_jaxpr", "fun_jaxpr")


class _Frame:
  """One jaxpr being walked: who produced each variable, and what its inputs are."""

  def __init__(self, jaxpr: Any, consts, args):
    self.jaxpr = jaxpr
    self.producer = {v: (eqn, i) for eqn in jaxpr.eqns for i, v in enumerate(eqn.outvars)}
    self.consts = dict(zip(jaxpr.constvars, consts))
    self.args = dict(zip(jaxpr.invars, args))  # var -> () -> Range
    self.memo: Dict[Any, Range] = {}
    self.calls: Dict[int, Any] = {}


def _concrete_range(value: Any) -> Range:
  a = np.asarray(value)
  if a.size == 0 or not (a.dtype == np.bool_ or np.issubdtype(a.dtype, np.number)):
    return None
  a = a.astype(np.float64)
  if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
    return None
  return (float(a.min()), float(a.max()))


def _atom_range(frame: _Frame, atom: Any) -> Range:
  if hasattr(atom, "val"):  # a literal
    return _concrete_range(atom.val)
  if atom in frame.memo:
    return frame.memo[atom]
  frame.memo[atom] = None  # a cycle proves nothing
  typed = _dtype_range(atom.aval.dtype) if hasattr(atom.aval, "dtype") else None
  if atom in frame.consts:
    found = _concrete_range(frame.consts[atom])
  elif atom in frame.args:
    found = frame.args[atom]()
  elif atom in frame.producer:
    found = _eqn_range(frame, *frame.producer[atom])
  else:
    found = None
  # An integer or bool variable holds integers whatever produced it.
  result = typed if found is None else (found if typed is None else _intersect(found, typed))
  frame.memo[atom] = result
  return result


def _sub_frame(frame: _Frame, key: Any, closed: Any, operands) -> Optional[_Frame]:
  if key not in frame.calls:
    jaxpr, consts = (closed.jaxpr, closed.consts) if hasattr(closed, "jaxpr") else (closed, ())
    if len(jaxpr.invars) != len(operands):
      frame.calls[key] = None
    else:
      frame.calls[key] = _Frame(jaxpr, consts, [
          (lambda op=op: _atom_range(frame, op)) for op in operands])
  return frame.calls[key]


def _eqn_range(frame: _Frame, eqn: Any, index: int) -> Range:
  name = eqn.primitive.name
  operands = eqn.invars
  if name == "select_n":
    return _union(_atom_range(frame, op) for op in operands[1:])
  if name in _PASS_THROUGH:
    positions = _PASS_THROUGH[name]
    chosen = operands if positions is None else [operands[p] for p in positions
                                                 if p < len(operands)]
    return _union(_atom_range(frame, op) for op in chosen)
  if name == "cond":
    subs = [_sub_frame(frame, (id(eqn), b), branch, operands[1:])
            for b, branch in enumerate(eqn.params["branches"])]
    if any(sub is None for sub in subs):
      return None
    return _union(_atom_range(sub, sub.jaxpr.outvars[index]) for sub in subs)
  for param in _CALLS:
    if param in eqn.params:
      sub = _sub_frame(frame, id(eqn), eqn.params[param], operands)
      return None if sub is None else _atom_range(sub, sub.jaxpr.outvars[index])
  return None


def traced_integer_range(fn: Callable[..., Any], *args: Any) -> Range:
  """The range of ``fn(*args)``'s values (every leaf) if they are proven integers.

  ``args`` may be ``jax.ShapeDtypeStruct``; integer and bool inputs count as
  integers of their dtype, float inputs as unknown. The proof follows each
  output back through data movement (reshape, select, concatenate, gather,
  ...), calls and conds, to literals, integer or bool values, and casts of
  them; any other producer of a float (arithmetic, a division) is unproven.
  """
  closed = jax.make_jaxpr(fn)(*args)
  root = _Frame(closed.jaxpr, closed.consts,
                [(lambda v=v: _dtype_range(v.aval.dtype)) for v in closed.jaxpr.invars])
  limit = sys.getrecursionlimit()
  sys.setrecursionlimit(max(limit, 20_000))
  try:
    return _union(_atom_range(root, out) for out in closed.jaxpr.outvars)
  except RecursionError:
    return None
  finally:
    sys.setrecursionlimit(limit)


_TRACE_CACHE: Dict[int, Tuple[Any, Range]] = {}


def _cached_trace(env: Any) -> Range:
  """:func:`env_integer_range`, once per env object."""
  cached = _TRACE_CACHE.get(id(env))
  if cached is not None and cached[0] is env:
    return cached[1]
  found = env_integer_range(env)
  _TRACE_CACHE[id(env)] = (env, found)
  return found


def env_integer_range(env: Any) -> Range:
  """The range of every observation ``env`` can emit, if proven integer (see above).

  Traces ``functional_reset`` and ``functional_step`` (its next and true
  final observations) of one env.
  """
  key = jax.ShapeDtypeStruct((2,), jnp.uint32)
  _, state = jax.eval_shape(lambda k: env.functional_reset(k, 1), key)
  space = getattr(env, "single_action_space", None)
  if isinstance(space, gymnasium.spaces.Discrete):
    actions = jax.ShapeDtypeStruct((1,), jnp.int32)
  else:
    actions = jax.ShapeDtypeStruct((1, *space.shape), space.dtype)

  def step_obs(key, state, actions):
    step = env.functional_step(key, state, actions)[1]
    return step.obs, step.final_obs

  return _union([traced_integer_range(lambda k: env.functional_reset(k, 1)[0], key),
                 traced_integer_range(step_obs, key, state, actions)])


# --- truncation -------------------------------------------------------------------

def truncation_interval(env: Any) -> int:
  """The fewest env steps between two truncations of one env (>= 1).

  The replay keeps the true final observation of each truncated step in a
  side store sized by it (``replay.py``). In order:

  * ``env.min_truncation_interval``, if an adapter declares it;
  * a ``GymnaxEnv`` whose gymnax env truncates with gymnax's own
    ``is_truncated`` (``time >= max_steps_in_episode``, ``time`` counting
    steps from 0 at reset): ``max_steps_in_episode``; one that overrides it: 1;
  * any other :class:`~baselax.envs.JaxEnv`: ``max_episode_steps``, since the
    protocol's ``truncated`` means "cut by the time limit";
  * else 1: any step may be truncated, and the side store is as large as the
    buffer (exact, at the cost of a second copy).
  """
  declared = getattr(env, "min_truncation_interval", None)
  if declared is not None:
    return max(1, int(declared))
  inner = getattr(env, "env", None)
  from gymnax.environments import environment as gymnax_environment
  if isinstance(inner, gymnax_environment.Environment):
    if type(inner).is_truncated is not gymnax_environment.Environment.is_truncated:
      return 1
    limit = getattr(getattr(env, "env_params", None), "max_steps_in_episode", None)
  else:
    limit = getattr(env, "max_episode_steps", None)
  return 1 if limit is None else max(1, int(limit))


# --- the memory plan ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MemoryPlan:
  """The replay memory of a run; see :func:`plan`.

  Attributes:
    buffer_kind: ``item``, ``prioritised item``, ``n-step`` or
      ``prioritised n-step``.
    obs_storage: the resolved storage (``float32``, ``uint8``, ``bool``,
      ``native``).
    obs_bytes: one observation as the env emits it.
    stored_obs_bytes: one observation as the buffer stores it.
    capacity: transitions one buffer holds.
    buffer_bytes: one buffer, summed over its state's arrays.
    buffers_per_device: buffers on one device (``Derived.seeds_per_device``).
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
  available_bytes: Optional[int]
  largest_buffer_size: Optional[int] = None

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
    return (self.available_bytes is None
            or self.required_bytes <= USABLE_FRACTION * self.available_bytes)

  def line(self) -> str:
    """The start-up log line."""
    where = ("" if self.available_bytes is None else
             f"; {_size(self.available_bytes)} {'available RAM' if self.memory == 'host' else 'per device'}")
    return (f"replay memory: {_size(self.total_bytes)} = {self.buffers_per_device} "
            f"buffer(s) per device x {self.local_devices} device(s) x "
            f"{self.capacity:,} transitions x {self.bytes_per_transition:,.1f} B "
            f"({self.buffer_kind} buffer, observations stored as {self.obs_storage}: "
            f"{self.stored_obs_bytes:,} B of {self.obs_bytes:,}){where}")

  def to_json(self) -> Dict[str, Any]:
    """The plan for ``config.json`` (its fields and the derived totals)."""
    out = dataclasses.asdict(self)
    out.update(bytes_per_transition=self.bytes_per_transition,
               device_bytes=self.device_bytes, total_bytes=self.total_bytes)
    return out

  def check(self) -> None:
    """Refuses buffers that cannot fit.

    Raises:
      ConfigError: naming the sizes and the largest ``buffer_size`` that fits.
    """
    if self.fits:
      return
    where = (f"the {_size(self.available_bytes)} of RAM available" if self.memory == "host"
             else f"a device's {_size(self.available_bytes)} of free memory")
    fix = (f"the largest buffer_size that fits is {self.largest_buffer_size:,}"
           if self.largest_buffer_size else "no buffer_size fits")
    raise ConfigError(
        f"the replay buffers (buffer_size {self.capacity:,}) need "
        f"{_size(self.required_bytes)} ({self.buffers_per_device} buffer(s) per device"
        f"{f' x {self.local_devices} device(s)' if self.memory == 'host' else ''} x "
        f"{self.capacity:,} transitions x {self.bytes_per_transition:,.1f} B) but only "
        f"{USABLE_FRACTION:.0%} of {where} may hold them: {fix}. Lower buffer_size "
        f"or num_seeds, or store observations compactly (obs_storage).")


def _size(n: Optional[float]) -> str:
  if n is None:
    return "?"
  for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
    if n >= scale:
      return f"{n / scale:,.2f} {unit}"
  return f"{int(n)} B"


def available_memory(device: Any = None) -> Tuple[str, Optional[int]]:
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


def buffer_kind(config: AnakinConfig) -> str:
  kind = "item" if config.n_step == 1 else "n-step"
  return f"prioritised {kind}" if config.prioritized else kind


def replay_bytes(agent: Any, env: Any, config: AnakinConfig,
                 example: Any = None) -> Tuple[int, int, ObsCodec]:
  """``(bytes, capacity, codec)`` of one replay buffer of ``config``, from its shapes.

  ``example``: the abstract step record (``replay.example_record``), if known.
  """
  from baselax.anakin import replay as replay_lib  # replay imports this module
  codec = obs_codec(config.obs_storage, env)
  buffer = replay_lib.make_replay(config, 0.99, codec=codec,
                                  truncation_interval=truncation_interval(env))
  if example is None:
    example = replay_lib.example_record(agent, env)
  state = jax.eval_shape(buffer.init, example)
  return _nbytes(state), buffer.capacity, codec


def plan(agent: Any, env: Any, config: AnakinConfig, derived: Any = None, *,
         local_devices: Optional[int] = None,
         available: Optional[Tuple[str, Optional[int]]] = None) -> MemoryPlan:
  """The :class:`MemoryPlan` of a run (nothing is allocated or compiled).

  Args:
    agent, env, config: the run.
    derived: its :class:`~baselax.anakin.config.Derived` sizes (default:
      ``config`` on this process's devices, no sweep); the buffers on a
      device are ``derived.seeds_per_device``, its runs.
    local_devices: devices this process maps over (default: the run's).
    available: ``(kind, bytes)`` to check against (default
      :func:`available_memory` of the first local device).
  """
  if local_devices is None or derived is None:
    from baselax.anakin import program  # program imports the loop, which imports this
    local_devices = program.local_num_devices(config) if local_devices is None else local_devices
    if derived is None:
      derived = config.derive(program.resolve_num_devices(config))
  kind, free = available if available is not None else available_memory()
  nbytes, capacity, codec = replay_bytes(agent, env, config)
  out = MemoryPlan(
      buffer_kind=buffer_kind(config), obs_storage=codec.name, obs_bytes=codec.obs_bytes,
      stored_obs_bytes=codec.stored_bytes, capacity=capacity, buffer_bytes=nbytes,
      buffers_per_device=derived.seeds_per_device, local_devices=local_devices,
      memory=kind, available_bytes=free)
  if out.fits:
    return out
  return dataclasses.replace(out, largest_buffer_size=_largest_fitting(
      agent, env, config, out))


def _largest_fitting(agent: Any, env: Any, config: AnakinConfig, out: MemoryPlan) -> int:
  """The largest ``buffer_size`` (a multiple of ``num_envs``) whose buffers fit, or 0."""
  from baselax.anakin import replay as replay_lib
  example = replay_lib.example_record(agent, env)
  per_buffer = USABLE_FRACTION * out.available_bytes / (
      out.buffers_per_device * (out.local_devices if out.memory == "host" else 1))

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
